package sasl

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The decoders of client messages. Each takes the untrusted bytes of one
// message and returns its fields or an error wrapping ErrMalformed (or
// ErrUnsupported, for a well-formed request of something runnel does not
// do); none keeps a reference to its input.

// maxMessage bounds any one client message; Kafka's clients send a few
// hundred bytes.
const maxMessage = 4096

// PlainMessage is a decoded PLAIN message (RFC 4616 section 2):
// authzid NUL authcid NUL passwd.
type PlainMessage struct {
	AuthzID, User, Password string
}

// ParsePlain decodes a PLAIN message. The user and password must not be
// empty, and no field may hold a NUL or be invalid UTF-8.
func ParsePlain(b []byte) (PlainMessage, error) {
	if len(b) > maxMessage {
		return PlainMessage{}, fmt.Errorf("%w: PLAIN message of %d bytes", ErrMalformed, len(b))
	}
	if !utf8.Valid(b) {
		return PlainMessage{}, fmt.Errorf("%w: PLAIN message is not UTF-8", ErrMalformed)
	}
	parts := bytes.Split(b, []byte{0})
	if len(parts) != 3 {
		return PlainMessage{}, fmt.Errorf("%w: PLAIN message has %d NUL-separated fields, want 3", ErrMalformed, len(parts))
	}
	m := PlainMessage{AuthzID: string(parts[0]), User: string(parts[1]), Password: string(parts[2])}
	if m.User == "" || m.Password == "" {
		return PlainMessage{}, fmt.Errorf("%w: PLAIN message without a user name or password", ErrMalformed)
	}
	return m, nil
}

// ClientFirst is a decoded SCRAM client-first message (RFC 5802
// section 7).
type ClientFirst struct {
	GS2Header string // "n,," or "y,," (with the authzid between the commas, if any)
	AuthzID   string // decoded; empty when absent
	User      string // decoded from its saslname form
	Nonce     string
	// Bare is the client-first-message-bare, part of the AuthMessage.
	Bare string
	// Extensions are the attribute-value pairs after the nonce, by name.
	Extensions map[string]string
}

// ParseClientFirst decodes a SCRAM client-first message. Channel binding
// ("p=") and mandatory extensions ("m=") are refused with ErrUnsupported.
func ParseClientFirst(b []byte) (ClientFirst, error) {
	var m ClientFirst
	s, err := messageString(b)
	if err != nil {
		return m, err
	}
	switch {
	case strings.HasPrefix(s, "n,"), strings.HasPrefix(s, "y,"):
	case strings.HasPrefix(s, "p="):
		return m, fmt.Errorf("%w: channel binding", ErrUnsupported)
	default:
		return m, fmt.Errorf("%w: client-first message does not start with a GS2 header", ErrMalformed)
	}
	zid, bare, ok := strings.Cut(s[2:], ",")
	if !ok {
		return m, fmt.Errorf("%w: GS2 header has no second comma", ErrMalformed)
	}
	if zid != "" {
		name, ok := strings.CutPrefix(zid, "a=")
		if !ok {
			return m, fmt.Errorf("%w: GS2 header authzid %q", ErrMalformed, zid)
		}
		if m.AuthzID, err = saslName(name); err != nil {
			return m, err
		}
	}
	m.GS2Header, m.Bare = s[:2]+zid+",", bare
	attrs := strings.Split(bare, ",")
	if strings.HasPrefix(attrs[0], "m=") {
		return m, fmt.Errorf("%w: mandatory extension", ErrUnsupported)
	}
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return m, fmt.Errorf("%w: client-first message wants n=user,r=nonce", ErrMalformed)
	}
	if m.User, err = saslName(attrs[0][2:]); err != nil {
		return m, err
	}
	if m.User == "" {
		return m, fmt.Errorf("%w: empty user name", ErrMalformed)
	}
	m.Nonce = attrs[1][2:]
	if err := checkNonce(m.Nonce); err != nil {
		return m, err
	}
	if m.Extensions, err = extensions(attrs[2:]); err != nil {
		return m, err
	}
	return m, nil
}

// ClientFinal is a decoded SCRAM client-final message.
type ClientFinal struct {
	ChannelBinding []byte // decoded c=
	Nonce          string
	Proof          []byte // decoded p=
	// WithoutProof is the client-final-message-without-proof, part of the
	// AuthMessage.
	WithoutProof string
}

// ParseClientFinal decodes a SCRAM client-final message:
// c=channel-binding,r=nonce[,extensions],p=proof.
func ParseClientFinal(b []byte) (ClientFinal, error) {
	var m ClientFinal
	s, err := messageString(b)
	if err != nil {
		return m, err
	}
	i := strings.LastIndex(s, ",p=")
	if i < 0 {
		return m, fmt.Errorf("%w: client-final message has no proof", ErrMalformed)
	}
	m.WithoutProof = s[:i]
	if m.Proof, err = base64.StdEncoding.Strict().DecodeString(s[i+3:]); err != nil || len(m.Proof) == 0 {
		return m, fmt.Errorf("%w: proof is not base64", ErrMalformed)
	}
	attrs := strings.Split(m.WithoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return m, fmt.Errorf("%w: client-final message wants c=binding,r=nonce,...,p=proof", ErrMalformed)
	}
	if m.ChannelBinding, err = base64.StdEncoding.Strict().DecodeString(attrs[0][2:]); err != nil {
		return m, fmt.Errorf("%w: channel binding is not base64", ErrMalformed)
	}
	m.Nonce = attrs[1][2:]
	if err := checkNonce(m.Nonce); err != nil {
		return m, err
	}
	if _, err := extensions(attrs[2:]); err != nil {
		return m, err
	}
	return m, nil
}

func messageString(b []byte) (string, error) {
	if len(b) > maxMessage {
		return "", fmt.Errorf("%w: message of %d bytes", ErrMalformed, len(b))
	}
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return "", fmt.Errorf("%w: message is not UTF-8 text", ErrMalformed)
	}
	return string(b), nil
}

// saslName decodes a saslname: "=2C" is ",", "=3D" is "=", and no other
// "=" may appear.
func saslName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", fmt.Errorf("%w: bad escape in name %q", ErrMalformed, s)
		}
		i += 2
	}
	return b.String(), nil
}

// checkNonce: printable ASCII without a comma (RFC 5802 "printable").
func checkNonce(n string) error {
	if n == "" {
		return fmt.Errorf("%w: empty nonce", ErrMalformed)
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == ',' {
			return fmt.Errorf("%w: nonce holds byte %#x", ErrMalformed, c)
		}
	}
	return nil
}

// extensions decodes attr=value pairs, an attribute being one or more
// ASCII letters.
func extensions(attrs []string) (map[string]string, error) {
	if len(attrs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(attrs))
	for _, a := range attrs {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: extension %q", ErrMalformed, a)
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return nil, fmt.Errorf("%w: extension name %q", ErrMalformed, k)
			}
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%w: extension %s given twice", ErrMalformed, k)
		}
		out[k] = v
	}
	return out, nil
}
