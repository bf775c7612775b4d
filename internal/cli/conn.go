package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	saslPasswordEnv = "RUNNEL_SASL_PASSWORD"
	saslTokenEnv    = "RUNNEL_SASL_OAUTH_TOKEN"
)

// Conn is how a client command reaches the brokers and logs in: --brokers,
// the TLS flags of an SSL or SASL_SSL listener and the SASL flags of a
// SASL_PLAINTEXT or SASL_SSL one. Every client command registers it.
type Conn struct {
	brokers    *string
	tls        *bool
	caFile     *string
	certFile   *string
	keyFile    *string
	serverName *string
	insecure   *bool
	sasl       saslFlags
}

// saslFlags are the flags that log a client command in over SASL.
type saslFlags struct{ mechanism, user, password, token *string }

// ConnFlags registers the connection flags on fs.
func ConnFlags(fs *flag.FlagSet) *Conn {
	return &Conn{
		brokers:    BrokersFlag(fs),
		tls:        fs.Bool("tls", false, "connect with TLS (an SSL or SASL_SSL listener); any other --tls- flag implies it"),
		caFile:     fs.String("tls-ca-file", "", "PEM `FILE` of the CAs that sign the brokers' certificates (default: the system's)"),
		certFile:   fs.String("tls-cert-file", "", "PEM `FILE` of this client's certificate chain, for a listener that asks for one (mTLS)"),
		keyFile:    fs.String("tls-key-file", "", "PEM `FILE` of the private key of --tls-cert-file"),
		serverName: fs.String("tls-server-name", "", "`NAME` the brokers' certificates must be valid for (default: the host dialled)"),
		insecure:   fs.Bool("tls-insecure-skip-verify", false, "accept any broker certificate (tests only: it allows a man in the middle)"),
		sasl: saslFlags{
			mechanism: fs.String("sasl-mechanism", "", "log in with `MECHANISM`: SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or OAUTHBEARER"),
			user:      fs.String("sasl-user", "", "user to log in as, with SCRAM or PLAIN"),
			password:  fs.String("sasl-password", os.Getenv(saslPasswordEnv), "password of --sasl-user (env "+saslPasswordEnv+")"),
			token:     fs.String("sasl-oauth-token", os.Getenv(saslTokenEnv), "bearer token (a JWT) for OAUTHBEARER (env "+saslTokenEnv+")"),
		},
	}
}

// Brokers returns the --brokers value.
func (c *Conn) Brokers() string { return *c.brokers }

// Opts returns the client options of the TLS and SASL flags.
func (c *Conn) Opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	cfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	s, err := c.sasl.opts()
	if err != nil {
		return nil, err
	}
	return append(opts, s...), nil
}

// Client connects with the connection flags and opts (see NewClient).
func (c *Conn) Client(ctx context.Context, opts ...kgo.Opt) (*kgo.Client, error) {
	sec, err := c.Opts()
	if err != nil {
		return nil, err
	}
	return NewClient(ctx, c.Brokers(), append(sec, opts...)...)
}

func (c *Conn) tlsConfig() (*tls.Config, error) {
	if !*c.tls && *c.caFile == "" && *c.certFile == "" && *c.keyFile == "" && *c.serverName == "" && !*c.insecure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: *c.serverName, InsecureSkipVerify: *c.insecure}
	if *c.caFile != "" {
		pem, err := os.ReadFile(*c.caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca-file %s: no PEM certificate in it", *c.caFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case *c.certFile != "" && *c.keyFile != "":
		cert, err := tls.LoadX509KeyPair(*c.certFile, *c.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-file, --tls-key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case *c.certFile != "" || *c.keyFile != "":
		return nil, errors.New("--tls-cert-file and --tls-key-file go together")
	}
	return cfg, nil
}

func (f saslFlags) opts() ([]kgo.Opt, error) {
	switch *f.mechanism {
	case "":
		if *f.user != "" {
			return nil, errors.New("--sasl-user needs --sasl-mechanism")
		}
		return nil, nil
	case "SCRAM-SHA-512":
		return []kgo.Opt{kgo.SASL(scram.Auth{User: *f.user, Pass: *f.password}.AsSha512Mechanism())}, nil
	case "SCRAM-SHA-256":
		return []kgo.Opt{kgo.SASL(scram.Auth{User: *f.user, Pass: *f.password}.AsSha256Mechanism())}, nil
	case "PLAIN":
		return []kgo.Opt{kgo.SASL(plain.Auth{User: *f.user, Pass: *f.password}.AsMechanism())}, nil
	case "OAUTHBEARER":
		if *f.token == "" {
			return nil, errors.New("--sasl-mechanism OAUTHBEARER needs --sasl-oauth-token (or " + saslTokenEnv + ")")
		}
		return []kgo.Opt{kgo.SASL(oauth.Auth{Token: *f.token}.AsMechanism())}, nil
	}
	return nil, fmt.Errorf("--sasl-mechanism %q: want SCRAM-SHA-512, SCRAM-SHA-256, PLAIN or OAUTHBEARER", *f.mechanism)
}
