// Package certstore holds a broker's TLS certificate, key and trusted CAs,
// and reloads them when their files change, without a restart.
//
// A Store is configured once: the *tls.Config its ServerConfig returns is
// handed to every SSL listener and never changes. Each handshake asks it
// (GetConfigForClient) for the configuration of the moment, and before
// answering the Store looks at the files' sizes, modification times and
// inodes (three stat calls, nothing read); when any differs from what it
// last loaded, it loads them again. Reload does the same at once, for
// SIGHUP. A load that fails (a key that does not match the certificate,
// as between the writes of a cert and its key, an unreadable file) keeps
// the previous configuration and is logged and counted; it is tried again
// when the files change again.
//
// # Concurrency
//
// The loaded state is one immutable value behind an atomic pointer: a
// handshake reads it without a lock. Loads are serialized by one mutex,
// held while the files are read and parsed; a handshake that finds the
// files changed while another load is running does not wait for it, and
// uses the state it has. No other lock is taken under it.
package certstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// ClientAuth is how an SSL listener asks clients for certificates
// (--tls-client-auth), named as Kafka's ssl.client.auth.
type ClientAuth int

const (
	// ClientAuthNone asks for no certificate.
	ClientAuthNone ClientAuth = iota
	// ClientAuthRequest asks for one and verifies it against the CAs if
	// the client sends one; a client without one is anonymous.
	ClientAuthRequest
	// ClientAuthRequire refuses a client without a certificate the CAs
	// verify.
	ClientAuthRequire
)

// ParseClientAuth parses none, request or require.
func ParseClientAuth(s string) (ClientAuth, error) {
	switch s {
	case "none":
		return ClientAuthNone, nil
	case "request":
		return ClientAuthRequest, nil
	case "require":
		return ClientAuthRequire, nil
	}
	return 0, fmt.Errorf("client auth %q: want none, request or require", s)
}

func (a ClientAuth) String() string {
	switch a {
	case ClientAuthRequest:
		return "request"
	case ClientAuthRequire:
		return "require"
	}
	return "none"
}

func (a ClientAuth) tlsType() tls.ClientAuthType {
	switch a {
	case ClientAuthRequest:
		return tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		return tls.RequireAndVerifyClientCert
	}
	return tls.NoClientCert
}

// Options says where the files are.
type Options struct {
	// CertFile and KeyFile are the PEM certificate chain (leaf first) and
	// private key the broker presents, as a server and to other brokers.
	CertFile, KeyFile string
	// CAFile holds the PEM certificates of the CAs trusted to sign client
	// certificates and other brokers' certificates. Empty: the system's
	// roots for brokers; required when ClientAuth asks for certificates.
	CAFile     string
	ClientAuth ClientAuth
	// Logger: nil means slog.Default().
	Logger *slog.Logger
}

// Store is a reloading certificate store. Its methods are safe for
// concurrent use.
type Store struct {
	o     Options
	log   *slog.Logger
	cur   atomic.Pointer[state]
	mu    sync.Mutex // serializes loads; see the package comment
	tried stamp      // the files as the last load saw them, whether it worked; under mu
	base  *tls.Config
	peer  *tls.Config

	reloads, failures atomic.Int64
}

// state is one loaded configuration. It never changes once stored.
type state struct {
	stamp  stamp
	server *tls.Config
	peer   *tls.Config // server side of broker-to-broker links: a verified certificate required
	client *tls.Config // without ServerName
	leaf   *x509.Certificate
}

// fileStamp is what stat says of a file; a change in any field is a new
// file.
type fileStamp struct {
	size, mtime int64
	ino         uint64
	err         bool
}

type stamp [3]fileStamp // cert, key, CA

// Open loads the files once; an error here is a broker that does not
// start.
func Open(o Options) (*Store, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("certstore: a certificate and a key file are required")
	}
	if o.ClientAuth != ClientAuthNone && o.CAFile == "" {
		return nil, fmt.Errorf("certstore: client auth %s needs a CA file to verify client certificates", o.ClientAuth)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Store{o: o, log: o.Logger}
	st, err := s.load(s.stat())
	if err != nil {
		return nil, err
	}
	s.cur.Store(st)
	s.tried = st.stamp
	s.base = &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: s.configForClient}
	s.peer = &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: s.configForPeer}
	return s, nil
}

// ServerConfig returns the configuration of every SSL listener: TLS 1.2 or
// later, the certificate and client CAs of the moment through
// GetConfigForClient. The same value every call; do not change it.
func (s *Store) ServerConfig() *tls.Config { return s.base }

// PeerServerConfig returns the configuration of a listener only other
// brokers connect to (Raft's, with --raft-tls): as ServerConfig, but every
// client must present a certificate the CAs verify, whatever ClientAuth
// says. Without a CA file no certificate verifies, so no peer connects.
func (s *Store) PeerServerConfig() *tls.Config { return s.peer }

// ClientConfig returns a new configuration for a connection to another
// broker at serverName: the current certificate (presented when asked),
// the CAs as roots, TLS 1.2 or later.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	s.check()
	c := s.cur.Load().client.Clone()
	c.ServerName = serverName
	return c
}

// Leaf returns the certificate being presented now.
func (s *Store) Leaf() *x509.Certificate { return s.cur.Load().leaf }

// Reload loads the files now if they changed since they were last loaded
// (or last failed to load), and says what happened: nil when nothing
// changed or the new files are in use.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked(s.stat())
}

// Reloads returns the number of loads that replaced the configuration, and
// failures the number that failed.
func (s *Store) Reloads() (reloads, failures int64) { return s.reloads.Load(), s.failures.Load() }

func (s *Store) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	s.check()
	return s.cur.Load().server, nil
}

func (s *Store) configForPeer(*tls.ClientHelloInfo) (*tls.Config, error) {
	s.check()
	return s.cur.Load().peer, nil
}

// check reloads if the files changed, unless another load is running.
func (s *Store) check() {
	st := s.stat()
	if st == s.cur.Load().stamp || !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	s.reloadLocked(st)
}

func (s *Store) reloadLocked(st stamp) error {
	if st == s.tried {
		return nil
	}
	s.tried = st
	next, err := s.load(st)
	if err != nil {
		s.failures.Add(1)
		s.log.Warn("reloading the TLS certificate failed; still presenting the previous one", "err", err)
		return err
	}
	s.cur.Store(next)
	s.reloads.Add(1)
	s.log.Info("TLS certificate reloaded", "subject", next.leaf.Subject.String(), "serial", next.leaf.SerialNumber.String(),
		"not_after", next.leaf.NotAfter)
	return nil
}

func (s *Store) stat() stamp {
	var st stamp
	for i, name := range []string{s.o.CertFile, s.o.KeyFile, s.o.CAFile} {
		if name == "" {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			st[i].err = true
			continue
		}
		st[i].size, st[i].mtime = fi.Size(), fi.ModTime().UnixNano()
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			st[i].ino = sys.Ino
		}
	}
	return st
}

// load reads and checks the files. st was taken before the reads, so a
// file replaced during them is seen as changed at the next check.
func (s *Store) load(st stamp) (*state, error) {
	cert, err := tls.LoadX509KeyPair(s.o.CertFile, s.o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("certstore: %s, %s: %w", s.o.CertFile, s.o.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certstore: %s: %w", s.o.CertFile, err)
		}
	}
	var pool *x509.CertPool
	if s.o.CAFile != "" {
		b, err := os.ReadFile(s.o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("certstore: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("certstore: %s holds no PEM certificate", s.o.CAFile)
		}
	}
	certs := []tls.Certificate{cert}
	peerCAs := pool
	if peerCAs == nil {
		peerCAs = x509.NewCertPool() // verifies nothing: no peer without a CA file
	}
	return &state{stamp: st, leaf: leaf,
		peer: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: certs,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    peerCAs,
		},
		server: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: certs,
			ClientAuth:   s.o.ClientAuth.tlsType(),
			ClientCAs:    pool,
			// Full-size records from the first byte: fetch responses are
			// bulk transfers, where small records only cost CPU.
			DynamicRecordSizingDisabled: true,
		},
		client: &tls.Config{
			MinVersion:           tls.VersionTLS12,
			RootCAs:              pool,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil },
		},
	}, nil
}
