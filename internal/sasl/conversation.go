package sasl

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"
)

// Credentials looks up stored SCRAM credentials. Implementations are safe
// for concurrent use.
type Credentials interface {
	// ScramCredential returns the user's credential for the mechanism.
	ScramCredential(user string, m ScramMechanism) (Credential, bool)
}

// Options configure the conversations of a listener.
type Options struct {
	// Credentials are the stored SCRAM credentials; PLAIN checks
	// passwords against them too.
	Credentials Credentials
	// Secret keys the made-up salts of unknown users. Every broker of a
	// cluster must use the same one, or a client could tell unknown
	// names by asking two brokers.
	Secret []byte
	// OAuth validates OAUTHBEARER tokens; nil: OAUTHBEARER is refused.
	OAuth TokenValidator
	// Nonce, if set, makes the server's nonces (tests).
	Nonce func() string
}

// Conversation is one client's SASL exchange.
type Conversation interface {
	// Next takes the client's next token and returns the server's answer
	// (possibly empty). An error ends the exchange: ErrAuthentication for
	// wrong credentials, ErrMalformed or ErrUnsupported for bad messages.
	Next(token []byte) ([]byte, error)
	// Done reports whether the client has authenticated.
	Done() bool
	// User is the authenticated user's name, once Done.
	User() string
	// Expiry is when the credential the client proved stops being valid
	// (an OAUTHBEARER token's expiry), zero for none.
	Expiry() time.Time
}

// NewConversation starts an exchange of the named mechanism.
func NewConversation(mechanism string, o Options) (Conversation, error) {
	switch mechanism {
	case Plain:
		return &plainConversation{o: o}, nil
	case OAuthBearer:
		if o.OAuth == nil {
			return nil, fmt.Errorf("%w: %w", ErrUnknownMechanism, errNoOAuth)
		}
		return &oauthConversation{o: o}, nil
	}
	m, ok := ParseScramMechanism(mechanism)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMechanism, mechanism)
	}
	return &scramConversation{o: o, m: m}, nil
}

type plainConversation struct {
	o    Options
	user string
	done bool
	used bool
}

func (c *plainConversation) Done() bool   { return c.done }
func (c *plainConversation) User() string { return c.user }

func (c *plainConversation) Expiry() time.Time { return time.Time{} }

// Next checks a PLAIN message against the user's strongest stored SCRAM
// credential. A user without one is checked against a made-up credential,
// which costs the same, before it fails.
func (c *plainConversation) Next(token []byte) ([]byte, error) {
	if c.used {
		return nil, ErrState
	}
	c.used = true
	msg, err := ParsePlain(token)
	if err != nil {
		return nil, err
	}
	if msg.AuthzID != "" && msg.AuthzID != msg.User {
		return nil, fmt.Errorf("%w: authorization id %q is not the user's", ErrUnsupported, msg.AuthzID)
	}
	m, known := SHA512, false
	cred := m.fakeCredential(c.o.Secret, msg.User) // derived for every user: the same work either way
	for _, mm := range ScramMechanisms {
		if c.o.Credentials == nil {
			break
		}
		if cr, ok := c.o.Credentials.ScramCredential(msg.User, mm); ok {
			m, cred, known = mm, cr, true
			break
		}
	}
	if ok := m.checkPassword(cred, msg.Password); !ok || !known {
		return nil, ErrAuthentication
	}
	c.user, c.done = msg.User, true
	return []byte{}, nil
}

type scramConversation struct {
	o       Options
	m       ScramMechanism
	step    int // 0: awaiting client-first; 1: client-final; 2: done; 3: failed
	user    string
	known   bool
	cred    Credential
	gs2     string
	cnonce  string // the client's nonce
	nonce   string // client nonce + server nonce
	authMsg string // client-first-bare "," server-first, without the final part
}

func (c *scramConversation) Done() bool   { return c.step == 2 }
func (c *scramConversation) User() string { return c.user }

func (c *scramConversation) Expiry() time.Time { return time.Time{} }

func (c *scramConversation) Next(token []byte) (out []byte, err error) {
	defer func() {
		if err != nil {
			c.step = 3
		}
	}()
	switch c.step {
	case 0:
		return c.first(token)
	case 1:
		return c.final(token)
	}
	return nil, ErrState
}

func (c *scramConversation) first(token []byte) ([]byte, error) {
	cf, err := ParseClientFirst(token)
	if err != nil {
		return nil, err
	}
	for k, v := range cf.Extensions {
		if k != "tokenauth" {
			return nil, fmt.Errorf("%w: extension %s", ErrUnsupported, k)
		}
		if v != "false" {
			return nil, fmt.Errorf("%w: delegation tokens", ErrUnsupported)
		}
	}
	if cf.AuthzID != "" && cf.AuthzID != cf.User {
		return nil, fmt.Errorf("%w: authorization id %q is not the user's", ErrUnsupported, cf.AuthzID)
	}
	c.user, c.gs2 = cf.User, cf.GS2Header
	// The made-up credential is derived for every user, known or not, so
	// that both take the same work.
	fake := c.m.fakeCredential(c.o.Secret, cf.User)
	if c.o.Credentials != nil {
		c.cred, c.known = c.o.Credentials.ScramCredential(cf.User, c.m)
	}
	if !c.known || len(c.cred.StoredKey) != c.m.Size() || len(c.cred.ServerKey) != c.m.Size() {
		c.known, c.cred = false, fake
	}
	snonce := ""
	if c.o.Nonce != nil {
		snonce = c.o.Nonce()
	} else {
		var b [24]byte
		rand.Read(b[:])
		snonce = base64.RawURLEncoding.EncodeToString(b[:])
	}
	c.cnonce, c.nonce = cf.Nonce, cf.Nonce+snonce
	serverFirst := "r=" + c.nonce + ",s=" + base64.StdEncoding.EncodeToString(c.cred.Salt) + ",i=" + strconv.Itoa(c.cred.Iterations)
	c.authMsg = cf.Bare + "," + serverFirst
	c.step = 1
	return []byte(serverFirst), nil
}

func (c *scramConversation) final(token []byte) ([]byte, error) {
	cf, err := ParseClientFinal(token)
	if err != nil {
		return nil, err
	}
	if string(cf.ChannelBinding) != c.gs2 {
		return nil, fmt.Errorf("%w: channel binding %q does not repeat the GS2 header", ErrMalformed, cf.ChannelBinding)
	}
	// The nonce must be the one the server sent. librdkafka (2.0.2, as
	// Debian ships it, among others) sends the client's nonce before it
	// once more, which Kafka's endsWith check let through; that one shape
	// is accepted too, and the proof covers it as it covers any other.
	if cf.Nonce != c.nonce && cf.Nonce != c.cnonce+c.nonce {
		return nil, fmt.Errorf("%w: nonce differs from the server's", ErrMalformed)
	}
	if len(cf.Proof) != c.m.Size() {
		return nil, fmt.Errorf("%w: proof of %d bytes, want %d", ErrMalformed, len(cf.Proof), c.m.Size())
	}
	authMsg := []byte(c.authMsg + "," + cf.WithoutProof)
	sig := c.m.mac(c.cred.StoredKey, authMsg)
	clientKey := make([]byte, len(sig))
	for i := range sig {
		clientKey[i] = cf.Proof[i] ^ sig[i]
	}
	if ok := hmac.Equal(c.m.sum(clientKey), c.cred.StoredKey); !ok || !c.known {
		return nil, ErrAuthentication
	}
	c.step = 2
	return []byte("v=" + base64.StdEncoding.EncodeToString(c.m.mac(c.cred.ServerKey, authMsg))), nil
}
