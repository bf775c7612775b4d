package broker

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	kgosasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/sasl"
)

// SASLConfig configures the SASL_PLAINTEXT and SASL_SSL listeners.
type SASLConfig struct {
	// Mechanisms are the mechanisms offered (--sasl-enabled-mechanisms):
	// SCRAM-SHA-512, SCRAM-SHA-256, PLAIN and OAUTHBEARER. The default
	// leaves PLAIN out, since it sends the password itself (turn it on
	// where the listener is SASL_SSL or the network is trusted), and
	// OAUTHBEARER, which needs OAuth.JWKSFile.
	Mechanisms []string
	// Users are created at start where the user has no credential for
	// that mechanism (--scram-user NAME:MECHANISM:PASSWORD, repeatable).
	Users []ScramUserSpec
	// UsersFile holds more of them, one NAME:MECHANISM:PASSWORD a line
	// (--scram-users-file), so that passwords stay off the command line.
	// Blank lines and lines starting with # are skipped.
	UsersFile string
	// InterBrokerUser is the user this broker authenticates as when the
	// inter-broker listener is SASL (--inter-broker-sasl-user), with the
	// password and mechanism of its first entry in Users or UsersFile.
	// Empty: the first entry's user.
	InterBrokerUser string
	// OAuth validates OAUTHBEARER tokens, when that mechanism is enabled.
	OAuth OAuthConfig
	// MaxReauth bounds a session on a SASL listener
	// (--connections-max-reauth; Kafka's connections.max.reauth.ms, KIP-368):
	// clients authenticate again on their connection before it ends, and
	// one that does not is closed at its next request. A token's expiry
	// bounds it too. Zero: off.
	MaxReauth time.Duration
}

// OAuthConfig is how OAUTHBEARER tokens are validated: JWTs signed by a
// key of a JWKS file. Kafka's names are in parentheses.
type OAuthConfig struct {
	// JWKSFile is the JWK set tokens are signed with, read again when it
	// changes (--sasl-oauthbearer-jwks-file; Kafka's
	// sasl.oauthbearer.jwks.endpoint.url as a file:// URL).
	JWKSFile string
	// Issuer, if set, must be the tokens' iss
	// (--sasl-oauthbearer-expected-issuer).
	Issuer string
	// Audience, if set, must be among the tokens' aud
	// (--sasl-oauthbearer-expected-audience).
	Audience string
	// SubClaim is the claim that names the principal
	// (--sasl-oauthbearer-sub-claim-name).
	SubClaim string
	// ClockSkew is allowed on exp, nbf and iat
	// (--sasl-oauthbearer-clock-skew).
	ClockSkew time.Duration
}

// jwtValidator opens the OAUTHBEARER validator, if that mechanism is
// enabled.
func (c SASLConfig) jwtValidator() (*sasl.JWTValidator, error) {
	if !slices.Contains(c.Mechanisms, sasl.OAuthBearer) {
		return nil, nil
	}
	return sasl.NewJWTValidator(sasl.JWTOptions{JWKSFile: c.OAuth.JWKSFile, Issuer: c.OAuth.Issuer,
		Audience: c.OAuth.Audience, PrincipalClaim: c.OAuth.SubClaim, ClockSkew: c.OAuth.ClockSkew})
}

// DefaultOAuth is the OAUTHBEARER default: the principal in sub, 30 s of
// clock skew (Kafka's defaults).
var DefaultOAuth = OAuthConfig{SubClaim: "sub", ClockSkew: 30 * time.Second}

// DefaultSASLMechanisms are the mechanisms offered by default.
var DefaultSASLMechanisms = []string{sasl.ScramSHA512, sasl.ScramSHA256}

// scramIterations is the iteration count of credentials made at start,
// Kafka's default.
const scramIterations = 4096

// ScramUserSpec is one --scram-user.
type ScramUserSpec struct {
	Name      string
	Mechanism sasl.ScramMechanism
	Password  string
}

func (u ScramUserSpec) String() string { return u.Name + ":" + u.Mechanism.String() + ":" + u.Password }

// ParseScramUser parses NAME:MECHANISM:PASSWORD; the password is
// everything after the second colon.
func ParseScramUser(s string) (ScramUserSpec, error) {
	name, rest, ok1 := strings.Cut(s, ":")
	mech, pass, ok2 := strings.Cut(rest, ":")
	m, ok3 := sasl.ParseScramMechanism(mech)
	if !ok1 || !ok2 || name == "" || pass == "" {
		return ScramUserSpec{}, errors.New("want NAME:MECHANISM:PASSWORD such as admin:SCRAM-SHA-512:secret")
	}
	if !ok3 {
		return ScramUserSpec{}, fmt.Errorf("user %s: mechanism %q: want SCRAM-SHA-256 or SCRAM-SHA-512", name, mech)
	}
	return ScramUserSpec{Name: name, Mechanism: m, Password: pass}, nil
}

// ParseScramUsers parses one NAME:MECHANISM:PASSWORD a line, skipping
// blank lines and # comments.
func ParseScramUsers(s string) ([]ScramUserSpec, error) {
	var out []ScramUserSpec
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		u, err := ParseScramUser(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// ParseMechanisms parses a comma-separated list of SASL mechanisms.
func ParseMechanisms(s string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if m != sasl.Plain && m != sasl.ScramSHA256 && m != sasl.ScramSHA512 && m != sasl.OAuthBearer {
			return nil, fmt.Errorf("SASL mechanism %q: want SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or OAUTHBEARER", m)
		}
		if slices.Contains(out, m) {
			return nil, fmt.Errorf("SASL mechanism %s is named twice", m)
		}
		out = append(out, m)
	}
	return out, nil
}

// scramUsers returns every --scram-user, then the file's.
func (c SASLConfig) scramUsers() ([]ScramUserSpec, error) {
	users := slices.Clone(c.Users)
	if c.UsersFile != "" {
		b, err := os.ReadFile(c.UsersFile)
		if err != nil {
			return nil, fmt.Errorf("--scram-users-file: %w", err)
		}
		more, err := ParseScramUsers(string(b))
		if err != nil {
			return nil, fmt.Errorf("--scram-users-file %s: %w", c.UsersFile, err)
		}
		users = append(users, more...)
	}
	return users, nil
}

// interBrokerMechanism returns how this broker authenticates to a SASL
// inter-broker listener: its user's SCRAM mechanism if enabled, else
// PLAIN with the same password if that is.
func (c SASLConfig) interBrokerMechanism(users []ScramUserSpec) (kgosasl.Mechanism, error) {
	var u *ScramUserSpec
	for i := range users {
		if c.InterBrokerUser == "" || users[i].Name == c.InterBrokerUser {
			u = &users[i]
			break
		}
	}
	if u == nil {
		if c.InterBrokerUser == "" {
			return nil, errors.New("the inter-broker listener is SASL: give the broker's own user with --scram-user (the first is the one it authenticates as)")
		}
		return nil, fmt.Errorf("--inter-broker-sasl-user %s is not one of --scram-user or --scram-users-file", c.InterBrokerUser)
	}
	switch {
	case slices.Contains(c.Mechanisms, u.Mechanism.String()):
		a := scram.Auth{User: u.Name, Pass: u.Password}
		if u.Mechanism == sasl.SHA512 {
			return a.AsSha512Mechanism(), nil
		}
		return a.AsSha256Mechanism(), nil
	case slices.Contains(c.Mechanisms, sasl.Plain):
		return plain.Auth{User: u.Name, Pass: u.Password}.AsMechanism(), nil
	}
	return nil, fmt.Errorf("inter-broker SASL user %s: its mechanism %s is not in --sasl-enabled-mechanisms", u.Name, u.Mechanism)
}

// isSASL says whether the protocol authenticates with SASL.
func (p SecurityProtocol) isSASL() bool { return p == SASLPlaintext || p == SASLSSL }

// isTLS says whether the protocol runs over TLS.
func (p SecurityProtocol) isTLS() bool { return p == SSL || p == SASLSSL }

// createScramUsers commits, in one command, the credential of every
// --scram-user that has none for its mechanism, and the cluster's SCRAM
// secret if it has none. Run by every broker at every start, it changes
// nothing the second time (each upsertion applies only where there is no
// credential), and proposes nothing when there is nothing to create.
func createScramUsers(ctx context.Context, node *cluster.Node, meta *cluster.Meta, users []ScramUserSpec) error {
	var cmd cluster.AlterScramCredentials
	if len(meta.ScramSecret()) == 0 {
		cmd.Secret = make([]byte, 32)
		rand.Read(cmd.Secret)
	}
	for _, u := range users {
		if _, ok := meta.ScramCredential(u.Name, int8(u.Mechanism)); ok {
			continue
		}
		salt := make([]byte, sasl.SaltSize)
		rand.Read(salt)
		cr, err := u.Mechanism.NewCredential(u.Password, salt, scramIterations)
		if err != nil {
			return err
		}
		cmd.Upsertions = append(cmd.Upsertions, cluster.ScramCredential{User: u.Name, Mechanism: int8(u.Mechanism),
			Salt: cr.Salt, Iterations: int32(cr.Iterations), StoredKey: cr.StoredKey, ServerKey: cr.ServerKey, IfAbsent: true})
	}
	if cmd.Secret == nil && len(cmd.Upsertions) == 0 {
		return nil
	}
	_, err := node.Propose(ctx, cluster.CmdAlterScramCredentials, cmd)
	return err
}

// saslDialer authenticates every connection dial makes, as a client of a
// SASL listener: SaslHandshake v1, then SaslAuthenticate until the
// mechanism is done. When the listener bounds the session (KIP-368), the
// connection authenticates again before the first request it writes
// after four fifths of the session's lifetime.
func saslDialer(dial func(ctx context.Context, addr string) (net.Conn, error), mech kgosasl.Mechanism) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		sc := &saslClientConn{Conn: c, mech: mech, addr: addr}
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		} else {
			c.SetDeadline(time.Now().Add(30 * time.Second))
		}
		err = sc.authenticate(ctx)
		c.SetDeadline(time.Time{})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("SASL %s with %s: %w", mech.Name(), addr, err)
		}
		return sc, nil
	}
}

// saslClientConn is a connection to a SASL listener that renews its
// session. Its user writes a whole request and reads its whole response
// before the next (the replica fetcher does), so that a renewal, made
// at a Write, has the stream to itself.
type saslClientConn struct {
	net.Conn
	mech    kgosasl.Mechanism
	addr    string
	renewAt time.Time // zero: the session does not expire
}

// Write renews the session first if it is due, within the deadline the
// caller set for the request.
func (c *saslClientConn) Write(b []byte) (int, error) {
	if !c.renewAt.IsZero() && !time.Now().Before(c.renewAt) {
		if err := c.authenticate(context.Background()); err != nil {
			return 0, fmt.Errorf("renewing the SASL %s session with %s: %w", c.mech.Name(), c.addr, err)
		}
	}
	return c.Conn.Write(b)
}

func (c *saslClientConn) authenticate(ctx context.Context) error {
	start := time.Now()
	lifetime, err := saslClientExchange(ctx, c.Conn, c.addr, c.mech)
	if err != nil {
		return err
	}
	c.renewAt = time.Time{}
	if lifetime > 0 {
		c.renewAt = start.Add(lifetime * 4 / 5)
	}
	return nil
}

// saslClientExchange authenticates c and returns the session's lifetime
// (zero: unbounded). It sets no deadline: the caller has.
func saslClientExchange(ctx context.Context, c net.Conn, addr string, mech kgosasl.Mechanism) (time.Duration, error) {
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("runnel-broker"))
	r := bufio.NewReader(c)
	var corr int32
	roundTrip := func(req kmsg.Request, resp kmsg.Response) error {
		corr++
		if _, err := c.Write(f.AppendRequest(nil, req, corr)); err != nil {
			return err
		}
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(size[:])
		if n < 4 || n > 1<<20 {
			return fmt.Errorf("response of %d bytes", n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		resp.SetVersion(req.GetVersion())
		body := b[4:]
		if resp.IsFlexible() {
			if len(body) == 0 || body[0] != 0 {
				return errors.New("response header with tagged fields")
			}
			body = body[1:]
		}
		return resp.ReadFrom(body)
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = mech.Name()
	hsResp := kmsg.NewPtrSASLHandshakeResponse()
	if err := roundTrip(hs, hsResp); err != nil {
		return 0, err
	}
	if err := kerr.ErrorForCode(hsResp.ErrorCode); err != nil {
		return 0, fmt.Errorf("%w (offered: %v)", err, hsResp.SupportedMechanisms)
	}
	sess, tok, err := mech.Authenticate(ctx, addr)
	if err != nil {
		return 0, err
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.SetVersion(1)
		req.SASLAuthBytes = tok
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		if err := roundTrip(req, resp); err != nil {
			return 0, err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			if resp.ErrorMessage != nil {
				return 0, fmt.Errorf("%w: %s", err, *resp.ErrorMessage)
			}
			return 0, err
		}
		done, next, err := sess.Challenge(resp.SASLAuthBytes)
		if err != nil {
			return 0, err
		}
		if done {
			return time.Duration(resp.SessionLifetimeMillis) * time.Millisecond, nil
		}
		tok = next
	}
}
