package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
)

// Mechanism names, as clients ask for them in SaslHandshake.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// ScramMechanism is a SCRAM hash, numbered as Kafka numbers them in
// AlterUserScramCredentials and DescribeUserScramCredentials. The numbers
// are stored in the cluster state: never change them.
type ScramMechanism int8

// The SCRAM mechanisms.
const (
	SHA256 ScramMechanism = 1
	SHA512 ScramMechanism = 2
)

// ScramMechanisms are the SCRAM mechanisms, strongest first.
var ScramMechanisms = []ScramMechanism{SHA512, SHA256}

// Iteration bounds Kafka puts on a SCRAM credential.
const (
	MinIterations = 4096
	MaxIterations = 16384
)

// SaltSize is the size of the salts this package makes.
const SaltSize = 32

// Errors.
var (
	// ErrUnknownMechanism: not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.
	ErrUnknownMechanism = errors.New("sasl: unsupported SASL mechanism")
	// ErrMalformed: a client message does not parse. The wrapping error
	// says what is wrong.
	ErrMalformed = errors.New("sasl: malformed SASL message")
	// ErrAuthentication: the credentials are wrong or the user is
	// unknown; the two are not told apart.
	ErrAuthentication = errors.New("sasl: authentication failed: invalid credentials")
	// ErrUnsupported: the client asked for something runnel does not do
	// (channel binding, a delegation token, an authorization id for
	// another user, an unknown extension).
	ErrUnsupported = errors.New("sasl: unsupported SASL request")
	// ErrIterations: an iteration count outside [MinIterations, MaxIterations].
	ErrIterations = fmt.Errorf("sasl: iterations must be between %d and %d", MinIterations, MaxIterations)
	// ErrState: a token arrived after the conversation ended.
	ErrState = errors.New("sasl: token after the end of the SASL exchange")
)

// ParseScramMechanism returns the SCRAM mechanism of a name
// ("SCRAM-SHA-256", "SCRAM-SHA-512").
func ParseScramMechanism(name string) (ScramMechanism, bool) {
	switch name {
	case ScramSHA256:
		return SHA256, true
	case ScramSHA512:
		return SHA512, true
	}
	return 0, false
}

// String is the mechanism's SASL name.
func (m ScramMechanism) String() string {
	switch m {
	case SHA256:
		return ScramSHA256
	case SHA512:
		return ScramSHA512
	}
	return fmt.Sprintf("ScramMechanism(%d)", int8(m))
}

// Valid reports whether m is SHA256 or SHA512.
func (m ScramMechanism) Valid() bool { return m == SHA256 || m == SHA512 }

func (m ScramMechanism) hash() func() hash.Hash {
	if m == SHA512 {
		return sha512.New
	}
	return sha256.New
}

// Size is the size of the mechanism's keys and proofs.
func (m ScramMechanism) Size() int {
	if m == SHA512 {
		return sha512.Size
	}
	return sha256.Size
}

// Credential is what the cluster stores of a user's SCRAM password.
type Credential struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte // H(HMAC(SaltedPassword, "Client Key"))
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// SaltPassword is Hi(password, salt, iterations) of RFC 5802: PBKDF2 with
// the mechanism's HMAC. The password is taken as given (no SASLprep, as
// Kafka's clients send it).
func (m ScramMechanism) SaltPassword(password string, salt []byte, iterations int) []byte {
	k, err := pbkdf2.Key(m.hash(), password, salt, iterations, m.Size())
	if err != nil {
		panic("sasl: pbkdf2: " + err.Error()) // only for lengths and counts checked before
	}
	return k
}

// FromSaltedPassword derives the stored credential from a salted password
// (what AlterUserScramCredentials carries).
func (m ScramMechanism) FromSaltedPassword(salted, salt []byte, iterations int) Credential {
	clientKey := m.mac(salted, []byte("Client Key"))
	return Credential{Salt: append([]byte(nil), salt...), Iterations: iterations,
		StoredKey: m.sum(clientKey), ServerKey: m.mac(salted, []byte("Server Key"))}
}

// NewCredential derives the stored credential of a password.
func (m ScramMechanism) NewCredential(password string, salt []byte, iterations int) (Credential, error) {
	if iterations < MinIterations || iterations > MaxIterations {
		return Credential{}, fmt.Errorf("%w: %d", ErrIterations, iterations)
	}
	if len(salt) == 0 {
		return Credential{}, errors.New("sasl: empty salt")
	}
	return m.FromSaltedPassword(m.SaltPassword(password, salt, iterations), salt, iterations), nil
}

func (m ScramMechanism) mac(key, msg []byte) []byte {
	h := hmac.New(m.hash(), key)
	h.Write(msg)
	return h.Sum(nil)
}

func (m ScramMechanism) sum(b []byte) []byte {
	h := m.hash()()
	h.Write(b)
	return h.Sum(nil)
}

// checkPassword reports whether password is the one cred was made from.
func (m ScramMechanism) checkPassword(cred Credential, password string) bool {
	salted := m.SaltPassword(password, cred.Salt, cred.Iterations)
	return hmac.Equal(m.sum(m.mac(salted, []byte("Client Key"))), cred.StoredKey)
}

// fakeCredential is the credential an unknown user is answered with: a
// salt derived from the name and the secret, Kafka's default iteration
// count, and keys that no proof matches.
func (m ScramMechanism) fakeCredential(secret []byte, user string) Credential {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("runnel scram salt\x00" + m.String() + "\x00" + user))
	salt := h.Sum(nil)[:SaltSize]
	h.Reset()
	h.Write([]byte("runnel scram key\x00" + m.String() + "\x00" + user))
	key := h.Sum(nil)
	for len(key) < m.Size() {
		key = append(key, key...)
	}
	return Credential{Salt: salt, Iterations: MinIterations, StoredKey: key[:m.Size()], ServerKey: key[:m.Size()]}
}
