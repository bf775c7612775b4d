package sasl

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// OAuthBearer is the OAUTHBEARER mechanism's name (RFC 7628; Kafka's
// KIP-255).
const OAuthBearer = "OAUTHBEARER"

// maxOAuthMessage bounds an OAUTHBEARER client message: a JWT with many
// claims is a few KiB.
const maxOAuthMessage = 64 << 10

// TokenValidator checks a bearer token.
type TokenValidator interface {
	// Validate returns the token's principal name and when it expires,
	// or an error wrapping ErrAuthentication.
	Validate(token string) (principal string, expiry time.Time, err error)
}

// OAuthMessage is a decoded OAUTHBEARER client message (RFC 7628
// section 3.1): a GS2 header, then key=value pairs each ended by 0x01, the
// whole ended by one more 0x01; "auth" holds "Bearer " and the token.
type OAuthMessage struct {
	AuthzID    string
	Token      string
	Extensions map[string]string // every key but auth
}

// ParseOAuthBearer decodes an OAUTHBEARER client message.
func ParseOAuthBearer(b []byte) (OAuthMessage, error) {
	var m OAuthMessage
	if len(b) > maxOAuthMessage {
		return m, fmt.Errorf("%w: OAUTHBEARER message of %d bytes", ErrMalformed, len(b))
	}
	if !utf8.Valid(b) {
		return m, fmt.Errorf("%w: OAUTHBEARER message is not UTF-8", ErrMalformed)
	}
	s := string(b)
	switch {
	case strings.HasPrefix(s, "n,"), strings.HasPrefix(s, "y,"):
	case strings.HasPrefix(s, "p="):
		return m, fmt.Errorf("%w: channel binding", ErrUnsupported)
	default:
		return m, fmt.Errorf("%w: OAUTHBEARER message does not start with a GS2 header", ErrMalformed)
	}
	zid, rest, ok := strings.Cut(s[2:], ",")
	if !ok {
		return m, fmt.Errorf("%w: GS2 header has no second comma", ErrMalformed)
	}
	if zid != "" {
		name, ok := strings.CutPrefix(zid, "a=")
		if !ok {
			return m, fmt.Errorf("%w: GS2 header authzid %q", ErrMalformed, zid)
		}
		var err error
		if m.AuthzID, err = saslName(name); err != nil {
			return m, err
		}
	}
	body, ok := strings.CutPrefix(rest, "\x01")
	if !ok || !strings.HasSuffix(body, "\x01\x01") {
		return m, fmt.Errorf("%w: OAUTHBEARER pairs are not framed by 0x01", ErrMalformed)
	}
	body = body[:len(body)-2]
	for _, kv := range strings.Split(body, "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return m, fmt.Errorf("%w: OAUTHBEARER pair %q", ErrMalformed, kv)
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return m, fmt.Errorf("%w: OAUTHBEARER key %q", ErrMalformed, k)
			}
		}
		if k == "auth" {
			if m.Token != "" {
				return m, fmt.Errorf("%w: auth given twice", ErrMalformed)
			}
			scheme, tok, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
				return m, fmt.Errorf("%w: auth is not \"Bearer <token>\"", ErrMalformed)
			}
			m.Token = tok
			continue
		}
		if m.Extensions == nil {
			m.Extensions = map[string]string{}
		}
		if _, dup := m.Extensions[k]; dup {
			return m, fmt.Errorf("%w: OAUTHBEARER key %s given twice", ErrMalformed, k)
		}
		m.Extensions[k] = v
	}
	if m.Token == "" {
		return m, fmt.Errorf("%w: no auth", ErrMalformed)
	}
	return m, nil
}

// FailedChallenge is a failure the mechanism reports to the client as a
// challenge first (OAUTHBEARER's error status, RFC 7628 section 3.2.2):
// the server sends Challenge as a normal answer, and the client's next
// token (0x01) ends the exchange with Err.
type FailedChallenge struct {
	Challenge []byte
	Err       error
}

func (e *FailedChallenge) Error() string { return e.Err.Error() }
func (e *FailedChallenge) Unwrap() error { return e.Err }

type oauthConversation struct {
	o      Options
	step   int // 0: awaiting the message; 1: awaiting 0x01 after a failure; 2: done; 3: ended
	failed error
	user   string
	expiry time.Time
}

func (c *oauthConversation) Done() bool        { return c.step == 2 }
func (c *oauthConversation) User() string      { return c.user }
func (c *oauthConversation) Expiry() time.Time { return c.expiry }

func (c *oauthConversation) Next(token []byte) ([]byte, error) {
	switch c.step {
	case 0:
		c.step = 3
		m, err := ParseOAuthBearer(token)
		if err != nil {
			return nil, err
		}
		user, expiry, err := c.o.OAuth.Validate(m.Token)
		if err == nil && m.AuthzID != "" && m.AuthzID != user {
			err = fmt.Errorf("%w: authorization id %q is not the token's principal", ErrAuthentication, m.AuthzID)
		}
		if err != nil {
			c.step, c.failed = 1, err
			return nil, &FailedChallenge{Challenge: []byte(`{"status":"invalid_token"}`), Err: err}
		}
		c.step, c.user, c.expiry = 2, user, expiry
		return []byte{}, nil
	case 1:
		c.step = 3
		if string(token) != "\x01" {
			return nil, fmt.Errorf("%w: after the error status the client sent %q, not 0x01", ErrMalformed, token)
		}
		return nil, c.failed
	}
	return nil, ErrState
}

// errNoOAuth: OAUTHBEARER asked for where no validator is configured.
var errNoOAuth = errors.New("sasl: OAUTHBEARER has no token validator")
