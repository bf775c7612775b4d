package sasl

import (
	"context"
	"errors"
	"strings"
	"testing"

	kplain "github.com/twmb/franz-go/pkg/sasl/plain"
	kscram "github.com/twmb/franz-go/pkg/sasl/scram"

	kgosasl "github.com/twmb/franz-go/pkg/sasl"
)

type credMap map[string]Credential

func (c credMap) ScramCredential(user string, m ScramMechanism) (Credential, bool) {
	cr, ok := c[m.String()+"/"+user]
	return cr, ok
}

func testCreds(t testing.TB) credMap {
	c := credMap{}
	for _, m := range ScramMechanisms {
		cr, err := m.NewCredential("secret", []byte("salt-of-alice-"+m.String()), MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		c[m.String()+"/alice"] = cr
	}
	cr, _ := SHA256.NewCredential("only256", []byte("salt-of-bob"), 8192)
	c["SCRAM-SHA-256/bob"] = cr
	return c
}

// run drives a franz-go client mechanism against a server conversation.
func run(t testing.TB, mech kgosasl.Mechanism, o Options) (Conversation, error) {
	conv, err := NewConversation(mech.Name(), o)
	if err != nil {
		t.Fatal(err)
	}
	sess, tok, err := mech.Authenticate(context.Background(), "broker:9092")
	if err != nil {
		t.Fatal(err)
	}
	for {
		out, err := conv.Next(tok)
		if err != nil {
			return conv, err
		}
		done, next, err := sess.Challenge(out)
		if err != nil {
			t.Fatalf("client refused the server's answer %q: %v", out, err)
		}
		if done {
			if !conv.Done() {
				t.Fatal("the client finished before the server")
			}
			return conv, nil
		}
		tok = next
	}
}

func scramClient(m ScramMechanism, user, pass string) kgosasl.Mechanism {
	a := kscram.Auth{User: user, Pass: pass}
	if m == SHA512 {
		return a.AsSha512Mechanism()
	}
	return a.AsSha256Mechanism()
}

func TestConversations(t *testing.T) {
	o := Options{Credentials: testCreds(t), Secret: []byte("cluster secret")}
	for _, tc := range []struct {
		name string
		mech kgosasl.Mechanism
		err  error
	}{
		{"scram-256", scramClient(SHA256, "alice", "secret"), nil},
		{"scram-512", scramClient(SHA512, "alice", "secret"), nil},
		{"scram-256 other iterations", scramClient(SHA256, "bob", "only256"), nil},
		{"scram-512 wrong password", scramClient(SHA512, "alice", "guess"), ErrAuthentication},
		{"scram-512 unknown user", scramClient(SHA512, "mallory", "secret"), ErrAuthentication},
		{"scram-512 no credential of that mechanism", scramClient(SHA512, "bob", "only256"), ErrAuthentication},
		{"scram comma in name", scramClient(SHA256, "a,b=c", "x"), ErrAuthentication},
		{"plain", kplain.Auth{User: "alice", Pass: "secret"}.AsMechanism(), nil},
		{"plain sha-256 only", kplain.Auth{User: "bob", Pass: "only256"}.AsMechanism(), nil},
		{"plain own authzid", kplain.Auth{Zid: "alice", User: "alice", Pass: "secret"}.AsMechanism(), nil},
		{"plain other authzid", kplain.Auth{Zid: "bob", User: "alice", Pass: "secret"}.AsMechanism(), ErrUnsupported},
		{"plain wrong password", kplain.Auth{User: "alice", Pass: "secreT"}.AsMechanism(), ErrAuthentication},
		{"plain unknown user", kplain.Auth{User: "mallory", Pass: "secret"}.AsMechanism(), ErrAuthentication},
		{"scram token", kscram.Auth{User: "alice", Pass: "secret", IsToken: true}.AsSha512Mechanism(), ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conv, err := run(t, tc.mech, o)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if tc.err == nil && conv.User() == "" {
				t.Fatal("no user after success")
			}
			if tc.err != nil && conv.Done() {
				t.Fatal("done after a failure")
			}
		})
	}
}

// TestUnknownUserLooksKnown: an unknown user gets a salt and iteration
// count like a real user's, the same at every attempt and for every
// secret-holding broker, and different users get different salts.
func TestUnknownUserLooksKnown(t *testing.T) {
	first := func(secret, user string) string {
		conv, _ := NewConversation(ScramSHA512, Options{Credentials: credMap{}, Secret: []byte(secret), Nonce: func() string { return "S" }})
		out, err := conv.Next([]byte("n,,n=" + user + ",r=C"))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	a := first("k", "mallory")
	if a != first("k", "mallory") {
		t.Fatal("the made-up salt changes between attempts")
	}
	if a == first("k", "eve") || a == first("other", "mallory") {
		t.Fatal("the made-up salt does not depend on the name and the secret")
	}
	if !strings.HasPrefix(a, "r=CS,s=") || !strings.HasSuffix(a, ",i=4096") {
		t.Fatalf("server-first %q", a)
	}
}

func TestScramProtocolErrors(t *testing.T) {
	o := Options{Credentials: testCreds(t), Secret: []byte("k"), Nonce: func() string { return "S" }}
	start := func() Conversation {
		conv, _ := NewConversation(ScramSHA256, o)
		if _, err := conv.Next([]byte("n,,n=alice,r=C")); err != nil {
			t.Fatal(err)
		}
		return conv
	}
	proof := "p=" + strings.Repeat("A", 43) + "="
	for _, tc := range []struct {
		final string
		err   error
	}{
		{"c=biws,r=CX," + proof, ErrMalformed},      // another nonce
		{"c=eSws,r=CS," + proof, ErrMalformed},      // binding "y,," after "n,,"
		{"c=biws,r=CS,p=AAAA", ErrMalformed},        // short proof
		{"c=biws,r=CS," + proof, ErrAuthentication}, // wrong proof
	} {
		if _, err := start().Next([]byte(tc.final)); !errors.Is(err, tc.err) {
			t.Errorf("%q: %v, want %v", tc.final, err, tc.err)
		}
	}
	conv := start()
	conv.Next([]byte("c=biws,r=CS," + proof))
	if _, err := conv.Next([]byte("c=biws,r=CS," + proof)); !errors.Is(err, ErrState) {
		t.Errorf("a token after a failure: %v", err)
	}
	for _, first := range []string{"p=tls-unique,,n=alice,r=C", "n,,m=x,n=alice,r=C", "n,,n=alice,r=C,ext=1", "n,a=bob,n=alice,r=C"} {
		conv, _ := NewConversation(ScramSHA256, o)
		if _, err := conv.Next([]byte(first)); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%q: %v, want unsupported", first, err)
		}
	}
}

func TestParsers(t *testing.T) {
	cf, err := ParseClientFirst([]byte("n,a=x=2Cy,n=x=2Cy=3Dz,r=abc,tokenauth=false"))
	if err != nil || cf.User != "x,y=z" || cf.AuthzID != "x,y" || cf.Nonce != "abc" || cf.Extensions["tokenauth"] != "false" ||
		cf.GS2Header != "n,a=x=2Cy," || cf.Bare != "n=x=2Cy=3Dz,r=abc,tokenauth=false" {
		t.Fatalf("%+v %v", cf, err)
	}
	for _, bad := range []string{"", "n", "n,", "x,,n=a,r=b", "n,,n=a", "n,,r=b,n=a", "n,,n=,r=b", "n,,n=a=2,r=b",
		"n,,n=a,r=", "n,,n=a,r=b c", "n,,n=a,r=b,=1", "n,,n=a,r=b,x", "n,b=c,n=a,r=b", "n,,n=a\x00,r=b", "n,,n=\xff,r=b"} {
		if _, err := ParseClientFirst([]byte(bad)); err == nil {
			t.Errorf("client-first %q parsed", bad)
		}
	}
	for _, bad := range []string{"", "c=biws,r=a", "c=biws,r=a,p=", "c=biws,r=a,p=!!", "c=b!,r=a,p=AAAA", "r=a,c=biws,p=AAAA", "c=biws,r=,p=AAAA"} {
		if _, err := ParseClientFinal([]byte(bad)); err == nil {
			t.Errorf("client-final %q parsed", bad)
		}
	}
	for _, bad := range []string{"", "\x00a\x00", "\x00\x00p", "a\x00b", "a\x00b\x00c\x00d", "\x00\xff\x00p"} {
		if _, err := ParsePlain([]byte(bad)); err == nil {
			t.Errorf("PLAIN %q parsed", bad)
		}
	}
}

func TestCredentialBounds(t *testing.T) {
	for _, it := range []int{0, MinIterations - 1, MaxIterations + 1} {
		if _, err := SHA256.NewCredential("p", []byte("s"), it); !errors.Is(err, ErrIterations) {
			t.Errorf("%d iterations: %v", it, err)
		}
	}
}

func FuzzParsePlain(f *testing.F) {
	f.Add([]byte("\x00alice\x00secret"))
	f.Add([]byte("alice\x00alice\x00secret"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParsePlain(b)
		if err == nil && (m.User == "" || m.Password == "") {
			t.Fatalf("%q: empty field accepted", b)
		}
	})
}

func FuzzParseClientFirst(f *testing.F) {
	f.Add([]byte("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"))
	f.Add([]byte("y,a=bob,n=b=2Cob,r=x,tokenauth=true"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseClientFirst(b)
		if err == nil && (m.User == "" || m.Nonce == "" || !strings.HasSuffix(string(b), m.Bare)) {
			t.Fatalf("%q: %+v", b, m)
		}
	})
}

func FuzzParseClientFinal(f *testing.F) {
	f.Add([]byte("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseClientFinal(b)
		if err == nil && (len(m.Proof) == 0 || !strings.HasPrefix(string(b), m.WithoutProof)) {
			t.Fatalf("%q: %+v", b, m)
		}
	})
}

// BenchmarkScramHandshake: one full SCRAM-SHA-512 exchange, client and
// server, at Kafka's default 4096 iterations.
func BenchmarkScramHandshake(b *testing.B) {
	for _, m := range ScramMechanisms {
		b.Run(m.String(), func(b *testing.B) {
			o := Options{Credentials: testCreds(b), Secret: []byte("k")}
			mech := scramClient(m, "alice", "secret")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := run(b, mech, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScramServer: the server's side of one SCRAM exchange alone
// (the client's messages made once, with fixed nonces), which is what a
// broker spends per handshake; PLAIN derives the salted password on the
// server, so it costs the iterations there.
func BenchmarkScramServer(b *testing.B) {
	creds := testCreds(b)
	for _, m := range ScramMechanisms {
		b.Run(m.String(), func(b *testing.B) {
			o := Options{Credentials: creds, Secret: []byte("k"), Nonce: func() string { return "server-nonce" }}
			a := kscram.Auth{User: "alice", Pass: "secret", Nonce: []byte("client-nonce")}
			mech := a.AsSha256Mechanism()
			if m == SHA512 {
				mech = a.AsSha512Mechanism()
			}
			sess, first, _ := mech.Authenticate(context.Background(), "broker:9092")
			conv, _ := NewConversation(m.String(), o)
			serverFirst, err := conv.Next(first)
			if err != nil {
				b.Fatal(err)
			}
			_, final, err := sess.Challenge(serverFirst)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				conv, _ := NewConversation(m.String(), o)
				if _, err := conv.Next(first); err != nil {
					b.Fatal(err)
				}
				if _, err := conv.Next(final); err != nil || !conv.Done() {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("PLAIN", func(b *testing.B) {
		o := Options{Credentials: creds, Secret: []byte("k")}
		for b.Loop() {
			conv, _ := NewConversation(Plain, o)
			if _, err := conv.Next([]byte("\x00alice\x00secret")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
