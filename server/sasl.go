package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/runnel-io/runnel/internal/sasl"
)

// SASL configures authentication on a SASL_PLAINTEXT or SASL_SSL
// listener. The exchanges themselves are package internal/sasl's.
type SASL struct {
	// Mechanisms are the mechanisms offered, in the order SaslHandshake
	// lists them: sasl.Plain, sasl.ScramSHA256, sasl.ScramSHA512,
	// sasl.OAuthBearer.
	Mechanisms []string
	// Credentials are the stored SCRAM credentials. Nil: the cluster
	// state's (Cluster.ScramCredential).
	Credentials sasl.Credentials
	// Secret returns the secret for the made-up salts of unknown users
	// (sasl.Options.Secret). Nil: the cluster state's, or until a broker
	// has set one, a secret of this process.
	Secret func() []byte
	// OAuth validates OAUTHBEARER tokens; nil: OAUTHBEARER is refused.
	OAuth sasl.TokenValidator
	// MaxReauth, when positive, bounds a session (KIP-368, Kafka's
	// connections.max.reauth.ms): SaslAuthenticate v1 and later tell the
	// client the session's lifetime, this or less if its token expires
	// sooner; the client authenticates again on the same connection
	// (SaslHandshake v1, then SaslAuthenticate, with the same mechanism
	// and principal) before then, and a request other than those after
	// the session expired closes the connection. Zero: sessions do not
	// expire.
	MaxReauth time.Duration
}

// maxSaslReceive bounds a frame read before the client has authenticated,
// as Kafka's sasl.server.max.receive.size (512 KiB) does.
const maxSaslReceive = 512 << 10

const (
	saslHandshakeKey    = 17
	saslAuthenticateKey = 36
)

// The stages of a connection on a SASL listener. Only the connection's
// handler goroutine reads or changes them.
const (
	saslDone         = iota // authenticated, or a listener without SASL
	saslHandshake           // awaiting SaslHandshake (ApiVersions allowed)
	saslAuthenticate        // v1 handshake done: awaiting SaslAuthenticate requests
	saslRawTokens           // v0 handshake done: the next frames are bare SASL tokens
)

// saslConn is a connection's authentication state.
type saslConn struct {
	cfg   *SASL
	stage int
	mech  string
	conv  sasl.Conversation
	// counted is set once a failure of this exchange is logged and
	// counted (an OAUTHBEARER error status before the final refusal).
	counted bool
	// expiry ends the session (zero: never); reauth is set while the
	// client authenticates again, as user, who it must stay.
	expiry time.Time
	reauth bool
	user   string
}

// errSaslState: a request that the SASL exchange does not allow where it
// came; the connection closes, as Kafka closes it.
var errSaslState = errors.New("server: request not allowed before SASL authentication")

// errSessionExpired: a request after the session's lifetime, without the
// client having authenticated again (KIP-368); the connection closes.
var errSessionExpired = errors.New("server: SASL session expired")

// saslGate refuses a request that may not come at this stage of the SASL
// exchange: before the handshake only ApiVersions and SaslHandshake may,
// after a v1 handshake only SaslAuthenticate (and a SaslHandshake, which is
// answered ILLEGAL_SASL_STATE before the connection closes), and after the
// session expired only the SASL requests that renew it.
func (c *conn) saslGate(h requestHeader) error {
	if c.sasl.stage == saslDone && !c.sasl.expiry.IsZero() && h.Key != saslHandshakeKey && h.Key != saslAuthenticateKey &&
		!c.s.now().Before(c.sasl.expiry) {
		c.s.m.saslExpired()
		return fmt.Errorf("%w: %s after the session expired at %s", errSessionExpired, apiName(h.Key), c.sasl.expiry.UTC().Format(time.RFC3339Nano))
	}
	switch c.sasl.stage {
	case saslHandshake:
		if h.Key == apiVersionsKey || h.Key == saslHandshakeKey {
			return nil
		}
	case saslAuthenticate:
		if h.Key == saslAuthenticateKey || h.Key == saslHandshakeKey {
			return nil
		}
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", errSaslState, apiName(h.Key))
}

// handleSaslHandshake answers a SaslHandshake. On a listener without SASL,
// or once authenticated without re-authentication, it is
// ILLEGAL_SASL_STATE (as Kafka answers it there) and the connection stays;
// during an exchange the same answer closes it. With MaxReauth, an
// authenticated client's v1 handshake starts a re-authentication, which
// must keep the mechanism (else SASL_AUTHENTICATION_FAILED and the close).
// A mechanism not offered is UNSUPPORTED_SASL_MECHANISM with the list, and
// the connection closes.
func (c *conn) handleSaslHandshake(h requestHeader, r *kmsg.SASLHandshakeRequest) *reply {
	resp := kmsg.NewPtrSASLHandshakeResponse()
	resp.SetVersion(h.Version)
	out := &reply{hdr: h, finish: func() any { return resp }}
	reauth := c.sasl.cfg != nil && c.sasl.stage == saslDone && c.sasl.cfg.MaxReauth > 0 && h.Version >= 1
	if reauth && r.Mechanism != c.sasl.mech {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.SupportedMechanisms = slices.Clone(c.sasl.cfg.Mechanisms)
		c.saslFailed("closing connection: re-authentication with another SASL mechanism",
			fmt.Errorf("%w: %s, authenticated with %s", errSaslState, r.Mechanism, c.sasl.mech))
		out.last = true
		return out
	}
	if !reauth && (c.sasl.cfg == nil || c.sasl.stage != saslHandshake) {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		if c.sasl.cfg != nil && c.sasl.stage != saslDone {
			c.saslFailed("closing connection: a second SaslHandshake", fmt.Errorf("%w: SaslHandshake", errSaslState))
			out.last = true
		}
		return out
	}
	resp.SupportedMechanisms = slices.Clone(c.sasl.cfg.Mechanisms)
	if !slices.Contains(c.sasl.cfg.Mechanisms, r.Mechanism) {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		c.saslFailed("closing connection: SASL mechanism not enabled", fmt.Errorf("%w: %q", sasl.ErrUnknownMechanism, r.Mechanism))
		out.last = true
		return out
	}
	conv, err := sasl.NewConversation(r.Mechanism, c.s.saslOptions(c.sasl.cfg))
	if err != nil {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		c.saslFailed("closing connection: SASL mechanism not enabled", err)
		out.last = true
		return out
	}
	c.sasl.mech, c.sasl.conv, c.sasl.reauth, c.sasl.counted = r.Mechanism, conv, reauth, false
	c.sasl.stage = saslAuthenticate
	if h.Version == 0 {
		// Kafka's first flow: the SASL tokens follow as bare frames.
		c.sasl.stage = saslRawTokens
	}
	return out
}

// handleSaslAuthenticate answers one SaslAuthenticate: the mechanism's
// next token, or SASL_AUTHENTICATION_FAILED with a message after which
// the connection closes.
func (c *conn) handleSaslAuthenticate(h requestHeader, r *kmsg.SASLAuthenticateRequest) *reply {
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	resp.SetVersion(h.Version)
	out := &reply{hdr: h, finish: func() any { return resp }}
	if c.sasl.stage != saslAuthenticate {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate is not expected now"
		resp.ErrorMessage = &msg
		return out
	}
	tok, err := c.saslNext(r.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := saslErrorMessage(c.sasl.mech, err)
		resp.ErrorMessage = &msg
		c.saslFailed("closing connection: SASL authentication failed", err)
		out.last = true
		return out
	}
	resp.SASLAuthBytes = tok
	lifetime, err := c.saslStepped()
	if err != nil {
		resp.SASLAuthBytes = nil
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: " + err.Error()
		resp.ErrorMessage = &msg
		c.saslFailed("closing connection: SASL re-authentication failed", err)
		out.last = true
		return out
	}
	resp.SessionLifetimeMillis = lifetime.Milliseconds()
	return out
}

// handleRawToken takes one bare SASL token of the v0 flow. Its answer is
// a bare token too; a failure closes the connection without one, as Kafka
// does (the flow has no way to say why).
func (c *conn) handleRawToken(b []byte) (*reply, bool) {
	tok, err := c.saslNext(b)
	if err != nil {
		c.saslFailed("closing connection: SASL authentication failed", err)
		return nil, false
	}
	if _, err := c.saslStepped(); err != nil {
		c.saslFailed("closing connection: SASL authentication failed", err)
		return nil, false
	}
	return &reply{hdr: requestHeader{Key: saslAuthenticateKey}, finish: func() any { return rawToken(tok) }}, true
}

// saslNext hands the exchange the client's token. A failure the mechanism
// reports as a challenge first (sasl.FailedChallenge) is logged and
// counted now and its challenge returned as an answer; the exchange then
// ends with the error at the client's next token.
func (c *conn) saslNext(tok []byte) ([]byte, error) {
	out, err := c.sasl.conv.Next(tok)
	var fc *sasl.FailedChallenge
	if errors.As(err, &fc) {
		c.saslFailed("SASL authentication failed; sending the error status", fc.Err)
		return fc.Challenge, nil
	}
	return out, err
}

// saslStepped moves the connection on once a token was accepted: when
// the exchange is done, the client is its user, for the session's
// lifetime (zero: unbounded). A re-authentication must prove the same
// user.
func (c *conn) saslStepped() (time.Duration, error) {
	if !c.sasl.conv.Done() {
		return 0, nil
	}
	conv, user := c.sasl.conv, c.sasl.conv.User()
	c.sasl.conv = nil
	if c.sasl.reauth && user != c.sasl.user {
		return 0, fmt.Errorf("%w: re-authenticated as %q, not %q", sasl.ErrAuthentication, user, c.sasl.user)
	}
	now := c.s.now()
	var lifetime time.Duration
	if limit := c.sasl.cfg.MaxReauth; limit > 0 {
		lifetime = limit
		if exp := conv.Expiry(); !exp.IsZero() && exp.Sub(now) < lifetime {
			lifetime = max(exp.Sub(now), time.Millisecond)
		}
		c.sasl.expiry = now.Add(lifetime)
	}
	if c.sasl.reauth {
		c.s.m.saslReauthentication()
	} else {
		c.s.m.saslAuthentication(c.sasl.mech, true)
	}
	c.sasl.user, c.sasl.reauth = user, false
	c.principal = "User:" + user
	c.sasl.stage = saslDone
	c.authed.Store(true)
	c.s.log.Debug("SASL authenticated", "remote", c.remote, "listener", c.listener, "mechanism", c.sasl.mech,
		"principal", c.principal, "session_lifetime", lifetime)
	return lifetime, nil
}

// saslFailed logs (rate-limited per client address) and counts a refused
// authentication.
func (c *conn) saslFailed(msg string, err error) {
	if c.sasl.counted {
		return
	}
	c.sasl.counted = true
	c.s.m.saslAuthentication(c.sasl.mech, false)
	c.warn(msg, "remote", c.remote, "listener", c.listener, "mechanism", c.sasl.mech, "err", err)
}

// saslErrorMessage is what the client is told. Wrong passwords and
// unknown users read the same; a refused token says why.
func saslErrorMessage(mech string, err error) string {
	if errors.Is(err, sasl.ErrAuthentication) && mech != sasl.OAuthBearer {
		return "Authentication failed: invalid credentials with SASL mechanism " + mech
	}
	return "Authentication failed: " + err.Error()
}

// rawToken is a bare SASL token, written as a 4-byte length and the bytes.
type rawToken []byte

func appendRawToken(b []byte, t rawToken) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(t)))
	return append(b, t...)
}
