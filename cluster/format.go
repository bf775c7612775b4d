package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/runnel-io/runnel/internal/quota"
)

// The formats the state machine persists: commands in the Raft log and
// snapshots of the state. Every struct in this file is on-disk format;
// its JSON names must never change silently (docs/format.md describes
// them, testdata/v1 holds a golden copy of each, and the v0 files in
// testdata/v0 must keep reading to the same state).
//
// A command in the Raft log, version 1:
//
//	offset size
//	0      1    format: 0x81 (version 1)
//	1      1    command type (CommandType)
//	2      16   proposal id; all zero: not deduplicated
//	18     …    the command as JSON (the structs below)
//
// Version 0, written before the formats were versioned, is the command
// type (1-14, never 0x81) followed by the command as JSON; it is still
// read (decodeV0), never written.
//
// A snapshot is one JSON object, snapshotV1; version 0 (no "version"
// field) is still read.

const (
	commandV1      = 0x81
	commandHeader  = 2 + len(ProposalID{})
	snapshotFormat = 1
)

// ProposalID names one proposal, so that the state machine applies it
// once however often it is proposed (a forward whose reply was lost, a
// leader that lost its leadership after appending it).
type ProposalID [16]byte

func newProposalID() ProposalID {
	var id ProposalID
	rand.Read(id[:])
	return id
}

func (id ProposalID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText writes the id as 32 hex digits.
func (id ProposalID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads 32 hex digits.
func (id *ProposalID) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(id) {
		return fmt.Errorf("cluster: proposal id %q: want 32 hex digits", b)
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// uuid is a topic id as persisted: the UUID string.
type uuid TopicID

func (u uuid) MarshalText() ([]byte, error) { return []byte(TopicID(u).String()), nil }

func (u *uuid) UnmarshalText(b []byte) error {
	var h []byte
	for _, c := range b {
		if c != '-' {
			h = append(h, c)
		}
	}
	if len(b) != 36 || hex.DecodedLen(len(h)) != len(u) {
		return fmt.Errorf("cluster: topic id %q is not a UUID", b)
	}
	_, err := hex.Decode(u[:], h)
	return err
}

// Command payloads, version 1.
type (
	// RegisterBroker records a broker's (re)start: its addresses, a new
	// broker epoch. Addr is the advertised address of its inter-broker
	// listener; Listeners every listener's, by name (absent, as written
	// before there were several: one listener named PLAINTEXT at Addr).
	// Deduplicated by proposal id.
	RegisterBroker struct {
		ID        int32            `json:"id"`
		Addr      string           `json:"addr"`
		RaftAddr  string           `json:"raft_addr"`
		Listeners []BrokerListener `json:"listeners,omitempty"`
	}
	// SetBrokerFenced fences or unfences a broker. Deduplicated by
	// proposal id.
	SetBrokerFenced struct {
		ID     int32 `json:"id"`
		Fenced bool  `json:"fenced"`
	}
	// CreateTopic adds a topic with len(Assignment) partitions; refused if
	// the name exists.
	CreateTopic struct {
		Name              string            `json:"name"`
		ID                uuid              `json:"id"`
		ReplicationFactor int16             `json:"replication_factor,omitempty"`
		Configs           map[string]string `json:"configs,omitempty"`
		Assignment        [][]int32         `json:"assignment"` // replicas of each partition, preferred leader first
	}
	// DeleteTopic removes the topic, if it still has the id.
	DeleteTopic struct {
		Name string `json:"name"`
		ID   uuid   `json:"id"`
	}
	// CreatePartitions raises a topic's partition count to Total, Kafka's
	// way: it applies only if the topic has Total-len(Assignment)
	// partitions, so a second request for the same total is refused.
	CreatePartitions struct {
		Name       string    `json:"name"`
		Total      int32     `json:"total"`
		Assignment [][]int32 `json:"assignment"` // of the new partitions only
	}
	// SetConfigs replaces a topic's explicit configs. With Prev, only if
	// they are still Prev (none: empty), the ones the change was computed
	// from: otherwise it is refused (configs_changed), so that of two
	// changes computed from the same configs the second is computed
	// again rather than undoing the first. Deduplicated by proposal id.
	SetConfigs struct {
		Name    string             `json:"name"`
		Configs map[string]string  `json:"configs"`
		Prev    *map[string]string `json:"prev,omitempty"`
	}
	// ChangeLeader is the controller's election: a new leader (or -1) and
	// ISR, with the leader epoch bumped. It applies only if the partition
	// is still at PrevEpoch.
	ChangeLeader struct {
		TP        TP      `json:"tp"`
		PrevEpoch int32   `json:"prev_epoch"`
		Leader    int32   `json:"leader"`
		ISR       []int32 `json:"isr"`
	}
	// ChangeISR is the leader shrinking or growing the ISR of a partition
	// it leads at LeaderEpoch, computed from the state at PartitionEpoch.
	ChangeISR struct {
		TP             TP      `json:"tp"`
		Leader         int32   `json:"leader"`
		LeaderEpoch    int32   `json:"leader_epoch"`
		PartitionEpoch int32   `json:"partition_epoch"`
		ISR            []int32 `json:"isr"`
	}
	// SegmentRolled records a leader's new segment at Base; a base
	// already recorded changes nothing.
	SegmentRolled struct {
		TP   TP    `json:"tp"`
		Base int64 `json:"base"`
	}
	// SegmentsDeleted moves the log start: segments wholly below it go.
	// The log start only moves forward.
	SegmentsDeleted struct {
		TP       TP    `json:"tp"`
		LogStart int64 `json:"log_start"`
	}
	// CommitOffsets records a group's committed offsets.
	CommitOffsets struct {
		Group   string         `json:"group"`
		Offsets []OffsetCommit `json:"offsets"`
	}
	// DeleteOffsets removes some of a group's committed offsets.
	DeleteOffsets struct {
		Group      string `json:"group"`
		Partitions []TP   `json:"partitions"`
	}
	// DeleteGroup removes every committed offset of a group.
	DeleteGroup struct {
		Group string `json:"group"`
	}
	// AllocateProducerIDs reserves N producer ids. Deduplicated by
	// proposal id.
	AllocateProducerIDs struct {
		N int64 `json:"n"`
	}
	// AlterScramCredentials deletes and then upserts SCRAM credentials,
	// and sets the cluster's SCRAM secret if it has none (Secret, left out
	// when empty). An upsertion with IfAbsent applies only where the user
	// has no credential for that mechanism; a deletion of a credential
	// that does not exist changes nothing. Deduplicated by proposal id.
	AlterScramCredentials struct {
		Deletions  []ScramUser       `json:"deletions,omitempty"`
		Upsertions []ScramCredential `json:"upsertions,omitempty"`
		Secret     []byte            `json:"secret,omitempty"`
	}
	// AlterAcls deletes and then creates ACL bindings, as one change: a
	// deletion of a binding that does not exist and a creation of one
	// that does change nothing, and a malformed binding refuses the whole
	// command. Deduplicated by proposal id.
	AlterAcls struct {
		Deletions []AclBinding `json:"deletions,omitempty"`
		Creations []AclBinding `json:"creations,omitempty"`
	}
	// AlterClientQuotas changes the client quotas of entities, as one
	// change: each entry removes the keys of Remove and then sets those of
	// Set on its entity; an entity left with no quota is gone. A
	// malformed entry (entity, key or value) refuses the whole command.
	// Deduplicated by proposal id.
	AlterClientQuotas struct {
		Entries []ClientQuotaAlteration `json:"entries"`
	}
	// SetBrokerConfigs replaces the dynamic configs of one broker (Broker,
	// its node id) or, Broker -1 (DefaultBrokerConfigs), the cluster-wide
	// defaults: Kafka's broker config names and their values as strings.
	// No configs removes them all. Deduplicated by proposal id.
	// Prev, as in SetConfigs, makes it apply only over those configs.
	SetBrokerConfigs struct {
		Broker  int32              `json:"broker"`
		Configs map[string]string  `json:"configs,omitempty"`
		Prev    *map[string]string `json:"prev,omitempty"`
	}
	// ReassignPartition starts, replaces or (Cancel) cancels the
	// reassignment of a partition to the replicas Target, preferred
	// leader first, as Kafka's AlterPartitionReassignments. The
	// partition's replicas become Target followed by the original
	// replicas not in it; those of Target not original are adding, the
	// original not in Target removing, until CompleteReassignment. A
	// Target equal to the original replicas, in any order, is a plain
	// reorder and completes at once. Deduplicated by proposal id.
	ReassignPartition struct {
		TP     TP      `json:"tp"`
		Target []int32 `json:"target,omitempty"`
		Cancel bool    `json:"cancel,omitempty"`
	}
	// CompleteReassignment ends a reassignment whose target replicas are
	// all in the ISR, computed at PartitionEpoch: the removing replicas
	// leave the replicas and the ISR, and a leader among them hands its
	// leadership to the first target replica in sync. Proposed by the
	// controller.
	CompleteReassignment struct {
		TP             TP    `json:"tp"`
		PartitionEpoch int32 `json:"partition_epoch"`
	}
	// UnregisterBroker removes a broker's registration, as Kafka's
	// UnregisterBroker; refused while the broker is alive (unfenced) or
	// any partition still has it as a replica. Deduplicated by proposal
	// id.
	UnregisterBroker struct {
		ID int32 `json:"id"`
	}
)

// QuotaEntityPart is one part of a client quota entity, in commands and
// snapshots: its type ("user" or "client-id") and its name, null for the
// default entity of the type (Kafka's).
type QuotaEntityPart struct {
	Type string  `json:"type"`
	Name *string `json:"name"`
}

// ClientQuotaAlteration is one entity's change in AlterClientQuotas.
type ClientQuotaAlteration struct {
	Entity []QuotaEntityPart  `json:"entity"`
	Set    map[string]float64 `json:"set,omitempty"`
	Remove []string           `json:"remove,omitempty"`
}

// ClientQuota is one entity's quotas in a snapshot.
type ClientQuota struct {
	Entity []QuotaEntityPart  `json:"entity"`
	Values map[string]float64 `json:"values"`
}

func parseQuotaEntity(parts []QuotaEntityPart) (quota.Entity, error) {
	qp := make([]quota.Part, len(parts))
	for i, p := range parts {
		qp[i] = quota.Part{Type: p.Type, Name: p.Name}
	}
	e, err := quota.ParseEntity(qp)
	if err != nil {
		return e, fmt.Errorf("%w: %v", ErrMalformedCommand, err)
	}
	return e, nil
}

// QuotaEntityParts returns an entity as commands name it.
func quotaEntityParts(e quota.Entity) []QuotaEntityPart {
	var out []QuotaEntityPart
	for _, p := range e.Parts() {
		out = append(out, QuotaEntityPart{Type: p.Type, Name: p.Name})
	}
	return out
}

// AclBinding is one ACL, in commands and snapshots, with Kafka's numbers
// for its enumerations: ResourceType 2 topic, 3 group, 4 cluster, 5
// transactional id; PatternType 3 literal, 4 prefixed; Operation 2 all
// to 12 idempotent write (as Kafka's AclOperation); Permission 2 deny, 3
// allow. Principal is "User:name" (or "User:*"), Host an address or "*".
type AclBinding struct {
	ResourceType int8   `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  int8   `json:"pattern_type"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    int8   `json:"operation"`
	Permission   int8   `json:"permission"`
}

func (b AclBinding) validate() error {
	switch {
	case b.ResourceType < 2 || b.ResourceType > 5, b.PatternType != 3 && b.PatternType != 4,
		b.Operation < 2 || b.Operation > 12, b.Permission != 2 && b.Permission != 3,
		b.ResourceName == "", b.Principal == "", b.Host == "":
		return fmt.Errorf("%w: ACL binding %+v", ErrMalformedCommand, b)
	}
	return nil
}

// less orders bindings by resource, then principal, host, operation and
// permission.
func (b AclBinding) less(o AclBinding) bool {
	if b.ResourceType != o.ResourceType {
		return b.ResourceType < o.ResourceType
	}
	if b.ResourceName != o.ResourceName {
		return b.ResourceName < o.ResourceName
	}
	if b.PatternType != o.PatternType {
		return b.PatternType < o.PatternType
	}
	if b.Principal != o.Principal {
		return b.Principal < o.Principal
	}
	if b.Host != o.Host {
		return b.Host < o.Host
	}
	if b.Operation != o.Operation {
		return b.Operation < o.Operation
	}
	return b.Permission < o.Permission
}

// ScramUser names one SCRAM credential: a user and a mechanism, numbered
// as Kafka numbers them (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
type ScramUser struct {
	User      string `json:"user"`
	Mechanism int8   `json:"mechanism"`
}

// ScramCredential is a user's SCRAM credential for one mechanism, in
// commands and snapshots: never the password, only its salt, iteration
// count and the keys derived from the salted password (RFC 5802). Byte
// fields are base64 in the JSON.
type ScramCredential struct {
	User       string `json:"user"`
	Mechanism  int8   `json:"mechanism"`
	Salt       []byte `json:"salt"`
	Iterations int32  `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
	IfAbsent   bool   `json:"if_absent,omitempty"`
}

// BrokerListener is one of a broker's named listeners and the address it
// advertises, in commands and snapshots.
type BrokerListener struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// OffsetCommit is one committed offset, in commands and snapshots.
type OffsetCommit struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata,omitempty"`
	CommitMs    int64  `json:"commit_ms"` // Unix milliseconds
}

// commandNames are the names docs/format.md gives the commands.
var commandNames = map[CommandType]string{
	CmdRegisterBroker: "RegisterBroker", CmdSetBrokerFenced: "SetBrokerFenced", CmdCreateTopic: "CreateTopic",
	CmdDeleteTopic: "DeleteTopic", CmdCreatePartitions: "CreatePartitions", CmdSetConfigs: "SetConfigs",
	CmdChangeLeader: "ChangeLeader", CmdChangeISR: "ChangeISR", CmdSegmentRolled: "SegmentRolled",
	CmdSegmentsDeleted: "SegmentsDeleted", CmdCommitOffsets: "CommitOffsets", CmdDeleteOffsets: "DeleteOffsets",
	CmdDeleteGroup: "DeleteGroup", CmdAllocateProducerID: "AllocateProducerIDs",
	CmdAlterScramCredentials: "AlterScramCredentials", CmdAlterAcls: "AlterAcls", CmdAlterClientQuotas: "AlterClientQuotas",
	CmdSetBrokerConfigs: "SetBrokerConfigs", CmdReassignPartition: "ReassignPartition",
	CmdCompleteReassignment: "CompleteReassignment", CmdUnregisterBroker: "UnregisterBroker",
}

func (t CommandType) String() string {
	if n, ok := commandNames[t]; ok {
		return n
	}
	return fmt.Sprintf("CommandType(%d)", uint8(t))
}

// commandPayload returns a new payload of the command type, for decoding.
func commandPayload(t CommandType) any {
	switch t {
	case CmdRegisterBroker:
		return &RegisterBroker{}
	case CmdSetBrokerFenced:
		return &SetBrokerFenced{}
	case CmdCreateTopic:
		return &CreateTopic{}
	case CmdDeleteTopic:
		return &DeleteTopic{}
	case CmdCreatePartitions:
		return &CreatePartitions{}
	case CmdSetConfigs:
		return &SetConfigs{}
	case CmdChangeLeader:
		return &ChangeLeader{}
	case CmdChangeISR:
		return &ChangeISR{}
	case CmdSegmentRolled:
		return &SegmentRolled{}
	case CmdSegmentsDeleted:
		return &SegmentsDeleted{}
	case CmdCommitOffsets:
		return &CommitOffsets{}
	case CmdDeleteOffsets:
		return &DeleteOffsets{}
	case CmdDeleteGroup:
		return &DeleteGroup{}
	case CmdAllocateProducerID:
		return &AllocateProducerIDs{}
	case CmdAlterScramCredentials:
		return &AlterScramCredentials{}
	case CmdAlterAcls:
		return &AlterAcls{}
	case CmdAlterClientQuotas:
		return &AlterClientQuotas{}
	case CmdSetBrokerConfigs:
		return &SetBrokerConfigs{}
	case CmdReassignPartition:
		return &ReassignPartition{}
	case CmdCompleteReassignment:
		return &CompleteReassignment{}
	case CmdUnregisterBroker:
		return &UnregisterBroker{}
	}
	return nil
}

// EncodeCommand returns a command's bytes for the Raft log, without a
// proposal id.
func EncodeCommand(t CommandType, payload any) ([]byte, error) {
	return encodeCommand(t, ProposalID{}, payload)
}

func encodeCommand(t CommandType, id ProposalID, payload any) ([]byte, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, commandHeader+len(b))
	out = append(out, commandV1, byte(t))
	out = append(out, id[:]...)
	return append(out, b...), nil
}

// command is a decoded log entry: its type, proposal id (zero for none)
// and payload (a pointer to one of the payload structs, or a v0 command
// with no v1 equivalent).
type command struct {
	typ     CommandType
	id      ProposalID
	payload any
}

// decodeCommand decodes a command of either version. The type and id are
// set whenever the header was readable, even if the payload was not.
func decodeCommand(b []byte) (command, error) {
	if len(b) == 0 {
		return command{}, fmt.Errorf("%w: empty", ErrMalformedCommand)
	}
	if b[0] != commandV1 {
		return decodeV0(b)
	}
	if len(b) < commandHeader {
		return command{}, fmt.Errorf("%w: %d-byte header", ErrMalformedCommand, len(b))
	}
	c := command{typ: CommandType(b[1])}
	copy(c.id[:], b[2:commandHeader])
	if c.payload = commandPayload(c.typ); c.payload == nil {
		return c, fmt.Errorf("%w: %d", ErrUnknownCommand, c.typ)
	}
	if err := json.Unmarshal(b[commandHeader:], c.payload); err != nil {
		return c, fmt.Errorf("%w: %s: %v", ErrMalformedCommand, c.typ, err)
	}
	return c, nil
}

// Version 0: the shapes runnel wrote before the formats were versioned,
// where they differ from version 1 (the other commands read as v1).
type (
	v0Topic struct {
		Name              string            `json:"name"`
		ID                [16]byte          `json:"id"`
		Partitions        int32             `json:"partitions"`
		Configs           map[string]string `json:"configs,omitempty"`
		ReplicationFactor int16             `json:"replication_factor,omitempty"`
	}
	v0CreateTopic struct {
		Topic      v0Topic   `json:"topic"`
		Assignment [][]int32 `json:"assignment"`
	}
	// v0CreatePartitions added len(Assignment) partitions to whatever
	// count the topic had when it applied.
	v0CreatePartitions struct {
		Name       string    `json:"name"`
		Assignment [][]int32 `json:"assignment"`
	}
	// v0Offset is group.Offset as encoding/json wrote it, untagged.
	v0Offset struct {
		Topic       string    `json:"Topic"`
		Partition   int32     `json:"Partition"`
		Offset      int64     `json:"Offset"`
		LeaderEpoch int32     `json:"LeaderEpoch"`
		Metadata    string    `json:"Metadata"`
		CommitTime  time.Time `json:"CommitTime"`
	}
	v0CommitOffsets struct {
		Group   string     `json:"group"`
		Offsets []v0Offset `json:"offsets"`
	}
	v0TopicPartition struct {
		Topic     string `json:"Topic"`
		Partition int32  `json:"Partition"`
	}
	v0DeleteOffsets struct {
		Group      string             `json:"group"`
		Partitions []v0TopicPartition `json:"partitions"`
	}
)

func (o v0Offset) commit() OffsetCommit {
	return OffsetCommit{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch,
		Metadata: o.Metadata, CommitMs: o.CommitTime.UnixMilli()}
}

func decodeV0(b []byte) (command, error) {
	c := command{typ: CommandType(b[0])}
	bad := func(err error) (command, error) {
		return c, fmt.Errorf("%w: v0 %s: %v", ErrMalformedCommand, c.typ, err)
	}
	body := b[1:]
	switch c.typ {
	case CmdCreateTopic:
		var v v0CreateTopic
		if err := json.Unmarshal(body, &v); err != nil {
			return bad(err)
		}
		if int(v.Topic.Partitions) != len(v.Assignment) {
			return c, fmt.Errorf("%w: %d partitions, %d assigned", ErrPartitions, v.Topic.Partitions, len(v.Assignment))
		}
		c.payload = &CreateTopic{Name: v.Topic.Name, ID: uuid(v.Topic.ID), ReplicationFactor: v.Topic.ReplicationFactor,
			Configs: v.Topic.Configs, Assignment: v.Assignment}
	case CmdCreatePartitions:
		var v v0CreatePartitions
		if err := json.Unmarshal(body, &v); err != nil {
			return bad(err)
		}
		c.payload = &v
	case CmdCommitOffsets:
		var v v0CommitOffsets
		if err := json.Unmarshal(body, &v); err != nil {
			return bad(err)
		}
		p := &CommitOffsets{Group: v.Group}
		for _, o := range v.Offsets {
			p.Offsets = append(p.Offsets, o.commit())
		}
		c.payload = p
	case CmdDeleteOffsets:
		var v v0DeleteOffsets
		if err := json.Unmarshal(body, &v); err != nil {
			return bad(err)
		}
		p := &DeleteOffsets{Group: v.Group}
		for _, tp := range v.Partitions {
			p.Partitions = append(p.Partitions, TP(tp))
		}
		c.payload = p
	default:
		if c.payload = commandPayload(c.typ); c.payload == nil {
			return c, fmt.Errorf("%w: %d", ErrUnknownCommand, c.typ)
		}
		if err := json.Unmarshal(body, c.payload); err != nil {
			return bad(err)
		}
	}
	return c, nil
}

// A snapshot, version 1: the whole state, every list in a fixed order
// (brokers by id, topics by name, groups by name, offsets by partition,
// proposals oldest first), so that equal states give equal bytes.
type (
	snapshotV1 struct {
		Version        int             `json:"version"`
		Index          uint64          `json:"index"` // last log index applied
		Brokers        []snapBroker    `json:"brokers"`
		Topics         []snapTopic     `json:"topics"`
		Groups         []snapGroup     `json:"groups"`
		NextProducerID int64           `json:"next_producer_id"`
		Proposals      []proposalEntry `json:"proposals"`
		// ScramCredentials by user and mechanism, and ScramSecret, are left
		// out when empty.
		ScramCredentials []ScramCredential `json:"scram_credentials,omitempty"`
		ScramSecret      []byte            `json:"scram_secret,omitempty"`
		// Acls, in AclBinding order, are left out when empty.
		Acls []AclBinding `json:"acls,omitempty"`
		// ClientQuotas, in entity order, are left out when empty.
		ClientQuotas []ClientQuota `json:"client_quotas,omitempty"`
		// BrokerConfigs, by broker id (the cluster-wide defaults, -1,
		// first), are left out when empty.
		BrokerConfigs []SetBrokerConfigs `json:"broker_configs,omitempty"`
		// UnregisteredBrokers, in id order, are left out when empty.
		UnregisteredBrokers []int32 `json:"unregistered_brokers,omitempty"`
	}
	snapBroker struct {
		ID        int32            `json:"id"`
		Addr      string           `json:"addr"`
		RaftAddr  string           `json:"raft_addr"`
		Fenced    bool             `json:"fenced"`
		Epoch     int64            `json:"epoch"`
		Listeners []BrokerListener `json:"listeners,omitempty"`
	}
	snapTopic struct {
		Name              string            `json:"name"`
		ID                uuid              `json:"id"`
		ReplicationFactor int16             `json:"replication_factor,omitempty"`
		Configs           map[string]string `json:"configs,omitempty"`
		Partitions        []snapPartition   `json:"partitions"` // by index
	}
	snapPartition struct {
		Replicas       []int32 `json:"replicas"`
		Leader         int32   `json:"leader"`
		LeaderEpoch    int32   `json:"leader_epoch"`
		ISR            []int32 `json:"isr"`
		PartitionEpoch int32   `json:"partition_epoch"`
		Segments       []int64 `json:"segments,omitempty"`
		LogStart       int64   `json:"log_start"`
		// Adding and Removing: the partition's reassignment in progress
		// (ReassignPartition), absent when there is none.
		Adding   []int32 `json:"adding_replicas,omitempty"`
		Removing []int32 `json:"removing_replicas,omitempty"`
	}
	snapGroup struct {
		Group   string         `json:"group"`
		Offsets []OffsetCommit `json:"offsets"`
	}
	// proposalEntry is a deduplicated proposal's id and its result: a
	// value, or a refusal (its code in refusals and its message).
	proposalEntry struct {
		ID      ProposalID `json:"id"`
		Value   *int64     `json:"value,omitempty"`
		Refusal string     `json:"refusal,omitempty"`
		Message string     `json:"message,omitempty"`
	}
)

// Version 0 snapshots: State and group.Offset as encoding/json wrote them.
type (
	v0Snapshot struct {
		Brokers        map[int32]*v0Broker          `json:"brokers"`
		Topics         map[string]v0Topic           `json:"topics"`
		Partitions     map[string][]v0PartitionInfo `json:"partitions"`
		NextProducerID int64                        `json:"next_producer_id"`
		Index          uint64                       `json:"index"`
		Offsets        map[string][]v0Offset        `json:"offsets"`
	}
	v0Broker struct {
		ID       int32  `json:"id"`
		Addr     string `json:"addr"`
		RaftAddr string `json:"raft_addr"`
		Fenced   bool   `json:"fenced"`
		Epoch    int64  `json:"epoch"`
	}
	v0PartitionInfo struct {
		Replicas       []int32 `json:"replicas"`
		Leader         int32   `json:"leader"`
		LeaderEpoch    int32   `json:"leader_epoch"`
		ISR            []int32 `json:"isr"`
		PartitionEpoch int32   `json:"partition_epoch"`
		Segments       []int64 `json:"segments,omitempty"`
		LogStart       int64   `json:"log_start"`
	}
)

// refusals are the stable codes of the refusals a proposal's result can
// hold in a snapshot. Codes are stored: never change one.
var refusals = []struct {
	code string
	err  error
}{
	{"topic_exists", ErrTopicExists},
	{"unknown_topic", ErrUnknownTopic},
	{"partitions_changed", ErrPartitionsChanged},
	{"invalid_partitions", ErrPartitions},
	{"unknown_broker", ErrUnknownBroker},
	{"unknown_partition", ErrUnknownPartition},
	{"stale_leader_epoch", ErrStaleLeaderEpoch},
	{"bad_assignment", ErrBadAssignment},
	{"unknown_command", ErrUnknownCommand},
	{"malformed_command", ErrMalformedCommand},
	{"not_replica", ErrNotReplica},
	{"segment_out_of_order", ErrSegmentOutOfOrder},
	{"configs_changed", ErrConfigsChanged},
	{"no_reassignment", ErrNoReassignment},
	{"broker_in_use", ErrBrokerInUse},
}

// newProposalEntry records a command's result.
func newProposalEntry(id ProposalID, res any) proposalEntry {
	e := proposalEntry{ID: id}
	switch v := res.(type) {
	case error:
		e.Message, e.Refusal = v.Error(), "other"
		for _, r := range refusals {
			if errors.Is(v, r.err) {
				e.Refusal = r.code
				break
			}
		}
	case int64:
		e.Value = &v
	}
	return e
}

// result is the recorded result as the command returned it.
func (e proposalEntry) result() any {
	switch {
	case e.Refusal != "":
		for _, r := range refusals {
			if r.code == e.Refusal {
				return &remoteError{kind: r.err, msg: e.Message}
			}
		}
		return errors.New(e.Message)
	case e.Value != nil:
		return *e.Value
	}
	return nil
}
