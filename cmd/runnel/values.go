package main

// Typed values behind the string settings of runnel serve: each parses a
// setting into its field of serveOptions and prints the field back in the
// same syntax, which is how --help and the README show defaults.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-io/runnel/broker"
	"github.com/runnel-io/runnel/cluster"
	"github.com/runnel-io/runnel/consumer"
	"github.com/runnel-io/runnel/internal/certstore"
	"github.com/runnel-io/runnel/segment"
	"github.com/runnel-io/runnel/server"
)

// value is one setting's field: Set parses a setting, String prints the
// field as a setting.
type value interface {
	Set(string) error
	String() string
}

type funcValue struct {
	set func(string) error
	str func() string
}

func (f funcValue) Set(s string) error { return f.set(s) }
func (f funcValue) String() string     { return f.str() }

func stringVar(p *string) value {
	return funcValue{func(s string) error { *p = s; return nil }, func() string { return *p }}
}

func int32Var(p *int32) value {
	return funcValue{func(s string) error {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return fmt.Errorf("want a positive integer, got %q", s)
		}
		*p = int32(n)
		return nil
	}, func() string { return strconv.FormatInt(int64(*p), 10) }}
}

func intVar(p *int) value {
	return funcValue{func(s string) error {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return fmt.Errorf("want a positive integer, got %q", s)
		}
		*p = int(n)
		return nil
	}, func() string { return strconv.Itoa(*p) }}
}

func int64Var(p *int64) value {
	return funcValue{func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want a positive integer, got %q", s)
		}
		*p = n
		return nil
	}, func() string { return strconv.FormatInt(*p, 10) }}
}

func int16Var(p *int16) value {
	return funcValue{func(s string) error {
		n, err := strconv.ParseInt(s, 10, 32)
		switch {
		case err != nil || n < math.MinInt16:
			return fmt.Errorf("want a positive integer, got %q", s)
		case n > math.MaxInt16:
			return fmt.Errorf("%d is too large", n)
		}
		*p = int16(n)
		return nil
	}, func() string { return strconv.FormatInt(int64(*p), 10) }}
}

func boolVar(p *bool) value {
	return funcValue{func(s string) error {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		*p = b
		return nil
	}, func() string { return strconv.FormatBool(*p) }}
}

// durationVar is a duration that must be positive; delayVar one that may
// be 0s. Their ranges are checked by broker.Config.Validate; the phrases
// here match its messages.
func durationVar(p *time.Duration) value { return durVar(p, "a positive duration such as 30s") }
func delayVar(p *time.Duration) value    { return durVar(p, "a duration of 0s or more") }

func durVar(p *time.Duration, want string) value {
	return funcValue{func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want %s, got %q", want, s)
		}
		*p = d
		return nil
	}, func() string { return formatDuration(*p) }}
}

// formatDuration is time.Duration.String without trailing zero units:
// 10m, not 10m0s; 168h, not 168h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func fsyncVar(p *segment.FsyncPolicy) value {
	return funcValue{func(s string) (err error) {
		*p, err = segment.ParseFsyncPolicy(s)
		return err
	}, func() string { return p.String() }}
}

func fetchPathVar(p *consumer.Path) value {
	return funcValue{func(s string) (err error) {
		*p, err = consumer.ParsePath(s)
		return err
	}, func() string { return p.String() }}
}

func replicaSelectorVar(p *server.ReplicaSelector) value {
	return funcValue{func(s string) (err error) {
		*p, err = server.ParseReplicaSelector(s)
		return err
	}, func() string { return p.String() }}
}

func votersVar(p *[]cluster.Voter) value {
	return funcValue{func(s string) error {
		if strings.TrimSpace(s) == "" {
			*p = nil
			return nil
		}
		vs, err := cluster.ParseVoters(s)
		if err != nil {
			return err
		}
		*p = vs
		return nil
	}, func() string {
		parts := make([]string, len(*p))
		for i, v := range *p {
			parts[i] = fmt.Sprintf("%d@%s", v.ID, v.Addr)
		}
		return strings.Join(parts, ",")
	}}
}

func listenersVar(p *[]broker.ListenerAddr) value {
	return funcValue{func(s string) error {
		l, err := broker.ParseListeners(s)
		if err != nil {
			return err
		}
		*p = l
		return nil
	}, func() string { return broker.FormatListeners(*p) }}
}

func protocolMapVar(p *[]broker.ListenerProtocol) value {
	return funcValue{func(s string) error {
		m, err := broker.ParseProtocolMap(s)
		if err != nil {
			return err
		}
		*p = m
		return nil
	}, func() string { return broker.FormatProtocolMap(*p) }}
}

func clientAuthVar(p *certstore.ClientAuth) value {
	return funcValue{func(s string) error {
		a, err := certstore.ParseClientAuth(s)
		if err != nil {
			return err
		}
		*p = a
		return nil
	}, func() string { return p.String() }}
}

func mechanismsVar(p *[]string) value {
	return funcValue{func(s string) error {
		m, err := broker.ParseMechanisms(s)
		if err != nil {
			return err
		}
		*p = m
		return nil
	}, func() string { return strings.Join(*p, ",") }}
}

func scramUsersVar(p *[]broker.ScramUserSpec) value {
	return funcValue{func(s string) error {
		u, err := broker.ParseScramUsers(s)
		if err != nil {
			return err
		}
		*p = u
		return nil
	}, func() string {
		s := make([]string, len(*p))
		for i, u := range *p {
			s[i] = u.String()
		}
		return strings.Join(s, "\n")
	}}
}
