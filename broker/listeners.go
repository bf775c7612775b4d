package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/internal/certstore"
)

// ListenerAddr is one entry of --listeners or --advertised-listeners:
// NAME://host:port.
type ListenerAddr struct {
	Name string
	Addr string // host:port; an empty host listens on every interface
}

func (l ListenerAddr) String() string { return l.Name + "://" + l.Addr }

// SecurityProtocol is a listener's protocol, as Kafka names them.
type SecurityProtocol string

// The security protocols. SASL_PLAINTEXT and SASL_SSL authenticate with
// the mechanisms of SASLConfig, SASL_SSL over TLS as SSL.
const (
	Plaintext     SecurityProtocol = "PLAINTEXT"
	SSL           SecurityProtocol = "SSL"
	SASLPlaintext SecurityProtocol = "SASL_PLAINTEXT"
	SASLSSL       SecurityProtocol = "SASL_SSL"
)

// ListenerProtocol is one entry of --listener-security-protocol-map:
// NAME:PROTOCOL.
type ListenerProtocol struct {
	Name     string
	Protocol SecurityProtocol
}

// DefaultProtocolMap is Kafka's default listener.security.protocol.map:
// each protocol's name is a listener of that protocol.
var DefaultProtocolMap = []ListenerProtocol{{"PLAINTEXT", Plaintext}, {"SSL", SSL},
	{"SASL_PLAINTEXT", SASLPlaintext}, {"SASL_SSL", SASLSSL}}

// validListenerName: Kafka's listener names are letters, digits and
// underscores; runnel takes them as given, case and all.
func validListenerName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ParseListeners parses NAME://host:port,NAME://host:port,... (empty: none).
// Names must be distinct, ports numbers.
func ParseListeners(s string) ([]ListenerAddr, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []ListenerAddr
	seen := map[string]bool{}
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		name, addr, ok := strings.Cut(e, "://")
		if !ok || !validListenerName(name) {
			return nil, fmt.Errorf("listener %q: want NAME://host:port such as SSL://0.0.0.0:9093", e)
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || !validPort(port) {
			return nil, fmt.Errorf("listener %q: want NAME://host:port such as SSL://0.0.0.0:9093", e)
		}
		if seen[name] {
			return nil, fmt.Errorf("listener %s is named twice", name)
		}
		seen[name] = true
		out = append(out, ListenerAddr{Name: name, Addr: addr})
	}
	return out, nil
}

// ParseProtocolMap parses NAME:PROTOCOL,NAME:PROTOCOL,... with protocols
// PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL.
func ParseProtocolMap(s string) ([]ListenerProtocol, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []ListenerProtocol
	seen := map[string]bool{}
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		name, proto, ok := strings.Cut(e, ":")
		if !ok || !validListenerName(name) {
			return nil, fmt.Errorf("listener protocol %q: want NAME:PROTOCOL such as CLIENTS:SSL", e)
		}
		p := SecurityProtocol(proto)
		switch p {
		case Plaintext, SSL, SASLPlaintext, SASLSSL:
		default:
			return nil, fmt.Errorf("listener %s: protocol %q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", name, proto)
		}
		if seen[name] {
			return nil, fmt.Errorf("listener %s is mapped twice", name)
		}
		seen[name] = true
		out = append(out, ListenerProtocol{Name: name, Protocol: p})
	}
	return out, nil
}

// FormatListeners and FormatProtocolMap print the values as parsed.
func FormatListeners(ls []ListenerAddr) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = l.String()
	}
	return strings.Join(s, ",")
}

// FormatProtocolMap prints the map as ParseProtocolMap reads it.
func FormatProtocolMap(m []ListenerProtocol) string {
	s := make([]string, len(m))
	for i, p := range m {
		s[i] = p.Name + ":" + string(p.Protocol)
	}
	return strings.Join(s, ",")
}

// TLSConfig names the certificate files of SSL listeners.
type TLSConfig struct {
	// CertFile and KeyFile are the PEM certificate chain and key
	// (--tls-cert-file, --tls-key-file), reloaded when they change and on
	// SIGHUP.
	CertFile, KeyFile string
	// CAFile holds the CAs that sign client and broker certificates
	// (--tls-ca-file).
	CAFile string
	// ClientAuth is --tls-client-auth.
	ClientAuth certstore.ClientAuth
	// PrincipalMappingRules turn a client certificate's subject into its
	// principal, as Kafka's ssl.principal.mapping.rules
	// (--ssl-principal-mapping-rules; server.ParsePrincipalRules). Empty:
	// DEFAULT.
	PrincipalMappingRules string
}

// listenerPlan is one listener as the broker runs it.
type listenerPlan struct {
	name      string
	addr      string // to bind
	advertise string // "" until bound: the bound address
	protocol  SecurityProtocol
}

// listenerPlans resolves the listener settings into the listeners to run
// and the name of the inter-broker one. Without --listeners, --listen and
// --advertise are one PLAINTEXT listener named PLAINTEXT.
func (c Config) listenerPlans() ([]listenerPlan, string, error) {
	if len(c.Listeners) == 0 {
		if len(c.AdvertisedListeners) > 0 {
			return nil, "", errors.New("--advertised-listeners: needs --listeners")
		}
		if c.InterBrokerListener != "" && c.InterBrokerListener != cluster.DefaultListener {
			return nil, "", fmt.Errorf("--inter-broker-listener %s: without --listeners the one listener is %s", c.InterBrokerListener, cluster.DefaultListener)
		}
		return []listenerPlan{{name: cluster.DefaultListener, addr: c.Listen, advertise: c.Advertise, protocol: Plaintext}}, cluster.DefaultListener, nil
	}
	protos := map[string]SecurityProtocol{}
	for _, p := range c.ListenerProtocols {
		protos[p.Name] = p.Protocol
	}
	var errs []error
	plans := make([]listenerPlan, len(c.Listeners))
	byName := map[string]int{}
	for i, l := range c.Listeners {
		p, ok := protos[l.Name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("--listeners: listener %s has no protocol in --listener-security-protocol-map", l.Name))
		case p.isTLS() && (c.TLS.CertFile == "" || c.TLS.KeyFile == ""):
			errs = append(errs, fmt.Errorf("--listeners: %s listener %s needs --tls-cert-file and --tls-key-file", p, l.Name))
		}
		if _, dup := byName[l.Name]; dup {
			errs = append(errs, fmt.Errorf("--listeners: listener %s is named twice", l.Name))
		}
		byName[l.Name] = i
		plans[i] = listenerPlan{name: l.Name, addr: l.Addr, protocol: p}
	}
	for _, a := range c.AdvertisedListeners {
		i, ok := byName[a.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("--advertised-listeners: %s is not one of --listeners", a.Name))
			continue
		}
		plans[i].advertise = a.Addr
	}
	inter := c.InterBrokerListener
	if inter == "" {
		inter = plans[0].name
	} else if _, ok := byName[inter]; !ok {
		errs = append(errs, fmt.Errorf("--inter-broker-listener %s is not one of --listeners", inter))
	}
	return plans, inter, errors.Join(errs...)
}

// boundListener is a listener the broker has bound.
type boundListener struct {
	listenerPlan
	ln net.Listener
}

func (l *boundListener) bind() error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return fmt.Errorf("kafka listener %s: %w", l.name, err)
	}
	l.ln = ln
	if l.advertise == "" {
		l.advertise = ln.Addr().String()
		if h, _, _ := net.SplitHostPort(l.addr); h != "" {
			// Advertise the host as given (a name stays a name), with the
			// port the kernel chose for port 0.
			_, port, _ := net.SplitHostPort(l.advertise)
			l.advertise = net.JoinHostPort(h, port)
		}
	}
	return nil
}

// tlsDialer dials other brokers' SSL listeners with this broker's
// certificate, verifying theirs against the CAs.
func tlsDialer(store *certstore.Store) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		d := tls.Dialer{Config: store.ClientConfig(host)}
		return d.DialContext(ctx, "tcp", addr)
	}
}
