// Package quota is the broker's client quotas, Kafka's model: quotas set
// on entities (a user, a client id, a user and a client id, and the
// default entity of each, Kafka's null name), the order in which a
// connection's quota is found among them, the sliding window that
// measures what a client uses, and the throttle time that brings its rate
// back under its quota.
//
// A connection is known by its principal's name (the user) and the client
// id of its requests. For each quota key its quota is the first set of
// these entities, the most specific first (Kafka's order):
//
//	user=U, client-id=C
//	user=U, client-id=<default>
//	user=U
//	user=<default>, client-id=C
//	user=<default>, client-id=<default>
//	user=<default>
//	client-id=C
//	client-id=<default>
//
// What a client uses is measured per entity it was found at, with the
// default names replaced by the connection's own: a quota on user=U is
// shared by every client id of U; one on user=<default> is each user's
// own; one on client-id=<default> each client id's own. A client over its
// quota is throttled for the time its rate needs to come back to it, a
// request_percentage throttle for at most one sample's span (Kafka's
// bounds).
//
// Lookups take no lock: they read the current set of quotas through an
// atomic pointer, replaced whole when the quotas change. The windows are
// under the Manager's mutex, a leaf held only for arithmetic.
package quota

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Quota keys, Kafka's names.
const (
	ProducerByteRate       = "producer_byte_rate"
	ConsumerByteRate       = "consumer_byte_rate"
	RequestPercentage      = "request_percentage"
	ControllerMutationRate = "controller_mutation_rate"
)

// Entity types, Kafka's names.
const (
	TypeUser     = "user"
	TypeClientID = "client-id"
	TypeIP       = "ip"
)

// Errors of validation; the server answers INVALID_REQUEST for each.
var (
	ErrInvalidEntity = errors.New("quota: invalid entity")
	ErrInvalidKey    = errors.New("quota: invalid quota key")
	ErrInvalidValue  = errors.New("quota: invalid quota value")
)

// Entity is what a quota is set on: a user, a client id, or both. A part
// the entity has (HasUser, HasClientID) with an empty name is the default
// entity of its type. Entity is comparable: it keys maps.
type Entity struct {
	User        string
	ClientID    string
	HasUser     bool
	HasClientID bool
}

// String writes the entity as Kafka's tools do: "user=alice,client-id=<default>".
func (e Entity) String() string {
	var parts []string
	name := func(n string) string {
		if n == "" {
			return "<default>"
		}
		return n
	}
	if e.HasUser {
		parts = append(parts, TypeUser+"="+name(e.User))
	}
	if e.HasClientID {
		parts = append(parts, TypeClientID+"="+name(e.ClientID))
	}
	return strings.Join(parts, ",")
}

// Part is one part of an entity as the protocol names it: a type, and a
// name or none (nil: the default entity of the type).
type Part struct {
	Type string
	Name *string
}

// ParseEntity checks an entity's parts as Kafka does (known types, each
// at most once, at least one, no empty names) and returns the entity.
// The ip type, which Kafka has for connection-rate quotas, is refused:
// this broker has no connection-rate quota.
func ParseEntity(parts []Part) (Entity, error) {
	var e Entity
	if len(parts) == 0 {
		return e, fmt.Errorf("%w: an entity needs a user or a client id", ErrInvalidEntity)
	}
	for _, p := range parts {
		if p.Name != nil && *p.Name == "" {
			return e, fmt.Errorf("%w: an empty %s name (the default entity has no name)", ErrInvalidEntity, p.Type)
		}
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		switch p.Type {
		case TypeUser:
			if e.HasUser {
				return e, fmt.Errorf("%w: entity type %s twice", ErrInvalidEntity, p.Type)
			}
			e.User, e.HasUser = name, true
		case TypeClientID:
			if e.HasClientID {
				return e, fmt.Errorf("%w: entity type %s twice", ErrInvalidEntity, p.Type)
			}
			e.ClientID, e.HasClientID = name, true
		case TypeIP:
			return e, fmt.Errorf("%w: ip quotas (connection_creation_rate) are not supported", ErrInvalidEntity)
		default:
			return e, fmt.Errorf("%w: unknown entity type %q", ErrInvalidEntity, p.Type)
		}
	}
	return e, nil
}

// Parts returns the entity's parts in the protocol's form, user first.
func (e Entity) Parts() []Part {
	var out []Part
	name := func(n string) *string {
		if n == "" {
			return nil
		}
		return &n
	}
	if e.HasUser {
		out = append(out, Part{Type: TypeUser, Name: name(e.User)})
	}
	if e.HasClientID {
		out = append(out, Part{Type: TypeClientID, Name: name(e.ClientID)})
	}
	return out
}

// Less orders entities: users before client-id-only entities, by name
// (defaults first), then client ids.
func (e Entity) Less(o Entity) bool {
	if e.HasUser != o.HasUser {
		return e.HasUser
	}
	if e.User != o.User {
		return e.User < o.User
	}
	if e.HasClientID != o.HasClientID {
		return !e.HasClientID
	}
	return e.ClientID < o.ClientID
}

// ValidateValue checks a quota key and its value as Kafka does: one of
// the keys this broker enforces, byte rates integers, every value
// positive and finite. controller_mutation_rate, which Kafka has for
// topic creations and deletions, is refused: this broker does not
// enforce it.
func ValidateValue(key string, v float64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0) || v <= 0:
		return fmt.Errorf("%w: %s must be positive, not %v", ErrInvalidValue, key, v)
	case key != RequestPercentage && (v != math.Trunc(v) || v > math.MaxInt64):
		return fmt.Errorf("%w: %s needs an integer value, not %v", ErrInvalidValue, key, v)
	}
	return nil
}

// ValidateKey checks a quota key, for a removal.
func ValidateKey(key string) error {
	switch key {
	case ProducerByteRate, ConsumerByteRate, RequestPercentage:
		return nil
	case ControllerMutationRate:
		return fmt.Errorf("%w: %s is not enforced by this broker", ErrInvalidKey, key)
	}
	return fmt.Errorf("%w: %q", ErrInvalidKey, key)
}

// Config is a set of quotas: values by key, by entity. It is not changed
// once made.
type Config struct {
	by   map[Entity]map[string]float64
	keys map[string]bool // keys set on some entity
}

// NewConfig returns the quotas, which it copies.
func NewConfig(by map[Entity]map[string]float64) *Config {
	c := &Config{by: make(map[Entity]map[string]float64, len(by)), keys: map[string]bool{}}
	for e, vals := range by {
		if len(vals) == 0 {
			continue
		}
		m := make(map[string]float64, len(vals))
		for k, v := range vals {
			m[k] = v
			c.keys[k] = true
		}
		c.by[e] = m
	}
	return c
}

// Entities returns the entities with quotas, in Less order, with their
// values (the Config's own maps: read only).
func (c *Config) Entities() []Entity {
	out := make([]Entity, 0, len(c.by))
	for e := range c.by {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// Values returns the quotas set on an entity exactly (read only).
func (c *Config) Values(e Entity) map[string]float64 { return c.by[e] }

// Find returns the quota of key for a connection of user and clientID,
// and the entity its use is measured under (see the package comment); ok
// is false when no quota applies.
func (c *Config) Find(key, user, clientID string) (bound float64, metered Entity, ok bool) {
	if c == nil || !c.keys[key] {
		return 0, Entity{}, false
	}
	levels := [...]struct {
		set     Entity
		metered Entity
	}{
		{Entity{User: user, ClientID: clientID, HasUser: true, HasClientID: true}, Entity{User: user, ClientID: clientID, HasUser: true, HasClientID: true}},
		{Entity{User: user, HasUser: true, HasClientID: true}, Entity{User: user, ClientID: clientID, HasUser: true, HasClientID: true}},
		{Entity{User: user, HasUser: true}, Entity{User: user, HasUser: true}},
		{Entity{ClientID: clientID, HasUser: true, HasClientID: true}, Entity{User: user, ClientID: clientID, HasUser: true, HasClientID: true}},
		{Entity{HasUser: true, HasClientID: true}, Entity{User: user, ClientID: clientID, HasUser: true, HasClientID: true}},
		{Entity{HasUser: true}, Entity{User: user, HasUser: true}},
		{Entity{ClientID: clientID, HasClientID: true}, Entity{ClientID: clientID, HasClientID: true}},
		{Entity{HasClientID: true}, Entity{ClientID: clientID, HasClientID: true}},
	}
	for _, l := range levels {
		if v, found := c.by[l.set][key]; found {
			return v, l.metered, true
		}
	}
	return 0, Entity{}, false
}
