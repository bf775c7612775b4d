package sasl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sasl/oauth"
)

// testIssuer signs tokens with an RSA and an EC key, and publishes both
// in a JWKS file.
type testIssuer struct {
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	file string
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss := &testIssuer{rsa: rk, ec: ek, file: filepath.Join(t.TempDir(), "jwks.json")}
	iss.publish(t, iss.jwks())
	return iss
}

func (iss *testIssuer) jwks() []map[string]string {
	ecb, _ := iss.ec.PublicKey.Bytes() // 0x04 || x || y
	return []map[string]string{
		{"kty": "RSA", "kid": "r1", "use": "sig", "n": b64(iss.rsa.N.Bytes()), "e": b64(big.NewInt(int64(iss.rsa.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(ecb[1:33]), "y": b64(ecb[33:])},
	}
}

func (iss *testIssuer) publish(t testing.TB, keys []map[string]string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"keys": keys})
	tmp := iss.file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, iss.file); err != nil {
		t.Fatal(err)
	}
}

// sign makes a token with alg and kid over claims.
func (iss *testIssuer) sign(t testing.TB, alg, kid string, claims map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": "JWT"})
	cb, _ := json.Marshal(claims)
	input := b64(hb) + "." + b64(cb)
	var sig []byte
	var err error
	switch alg {
	case "RS256":
		d := crypto.SHA256.New()
		d.Write([]byte(input))
		sig, err = rsa.SignPKCS1v15(rand.Reader, iss.rsa, crypto.SHA256, d.Sum(nil))
	case "PS256":
		d := crypto.SHA256.New()
		d.Write([]byte(input))
		sig, err = rsa.SignPSS(rand.Reader, iss.rsa, crypto.SHA256, d.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		d := crypto.SHA256.New()
		d.Write([]byte(input))
		r, s, e := ecdsa.Sign(rand.Reader, iss.ec, d.Sum(nil))
		sig, err = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...), e
	case "none":
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

var oauthNow = time.Unix(1_800_000_000, 0)

func goodClaims() map[string]any {
	return map[string]any{"sub": "svc-orders", "iss": "https://idp.example", "aud": []string{"kafka", "other"},
		"exp": oauthNow.Add(time.Hour).Unix(), "iat": oauthNow.Add(-time.Minute).Unix()}
}

func TestOAuthBearer(t *testing.T) {
	iss := newTestIssuer(t)
	v, err := NewJWTValidator(JWTOptions{JWKSFile: iss.file, Issuer: "https://idp.example", Audience: "kafka",
		Now: func() time.Time { return oauthNow }})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{OAuth: v}
	with := func(edit func(map[string]any)) map[string]any {
		c := goodClaims()
		edit(c)
		return c
	}
	for _, tc := range []struct {
		name  string
		token string
		err   error
	}{
		{"RS256", iss.sign(t, "RS256", "r1", goodClaims()), nil},
		{"PS256", iss.sign(t, "PS256", "r1", goodClaims()), nil},
		{"ES256", iss.sign(t, "ES256", "e1", goodClaims()), nil},
		{"ES256 without kid", iss.sign(t, "ES256", "", goodClaims()), nil},
		{"skewed expiry", iss.sign(t, "RS256", "r1", with(func(c map[string]any) { c["exp"] = oauthNow.Add(-10 * time.Second).Unix() })), nil},
		{"expired", iss.sign(t, "RS256", "r1", with(func(c map[string]any) { c["exp"] = oauthNow.Add(-time.Minute).Unix() })), ErrTokenExpired},
		{"no exp", iss.sign(t, "RS256", "r1", with(func(c map[string]any) { delete(c, "exp") })), ErrTokenClaims},
		{"not yet", iss.sign(t, "RS256", "r1", with(func(c map[string]any) { c["nbf"] = oauthNow.Add(time.Hour).Unix() })), ErrTokenClaims},
		{"other issuer", iss.sign(t, "RS256", "r1", with(func(c map[string]any) { c["iss"] = "https://evil.example" })), ErrTokenClaims},
		{"other audience", iss.sign(t, "RS256", "r1", with(func(c map[string]any) { c["aud"] = "web" })), ErrTokenClaims},
		{"no sub", iss.sign(t, "RS256", "r1", with(func(c map[string]any) { delete(c, "sub") })), ErrTokenClaims},
		{"unknown kid", iss.sign(t, "RS256", "r9", goodClaims()), ErrTokenSignature},
		{"alg none", iss.sign(t, "none", "r1", goodClaims()), ErrTokenSignature},
		{"EC key, RSA alg", iss.sign(t, "ES256", "r1", goodClaims()), ErrTokenSignature},
		{"tampered", strings.Replace(iss.sign(t, "RS256", "r1", goodClaims()), ".", ".e30", 1), ErrTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conv, err := run(t, oauth.Auth{Token: tc.token}.AsMechanism(), o)
			if tc.err == nil {
				if err != nil || conv.User() != "svc-orders" || !conv.Expiry().Equal(time.Unix(goodClaims()["exp"].(int64), 0)) && tc.name != "skewed expiry" {
					t.Fatalf("%v, user %q expiry %v", err, conv.User(), conv.Expiry())
				}
				return
			}
			var fc *FailedChallenge
			if !errors.As(err, &fc) || !errors.Is(err, tc.err) || !errors.Is(err, ErrAuthentication) {
				t.Fatalf("got %v, want a failed challenge of %v", err, tc.err)
			}
			if string(fc.Challenge) != `{"status":"invalid_token"}` {
				t.Fatalf("challenge %q", fc.Challenge)
			}
			// The client's 0x01 ends it with the error.
			if _, err := conv.Next([]byte{1}); !errors.Is(err, tc.err) {
				t.Fatalf("after 0x01: %v", err)
			}
		})
	}

	// A new key in the file is used without a restart.
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	old := iss.ec
	iss.ec = k2
	tok := iss.sign(t, "ES256", "e2", goodClaims())
	if _, _, err := v.Validate(tok); !errors.Is(err, ErrTokenSignature) {
		t.Fatalf("a key not yet published: %v", err)
	}
	keys := iss.jwks()
	keys[1]["kid"] = "e2"
	iss.publish(t, keys)
	later := time.Now().Add(time.Second)
	os.Chtimes(iss.file, later, later) // a new mtime even on a coarse clock
	if _, _, err := v.Validate(tok); err != nil {
		t.Fatalf("after the JWKS changed: %v", err)
	}
	iss.ec = old

	if _, err := NewConversation(OAuthBearer, Options{}); !errors.Is(err, ErrUnknownMechanism) {
		t.Errorf("OAUTHBEARER without a validator: %v", err)
	}
}

func TestParseOAuthBearer(t *testing.T) {
	m, err := ParseOAuthBearer([]byte("n,a=svc,\x01auth=Bearer abc.def.ghi\x01host=h\x01\x01"))
	if err != nil || m.Token != "abc.def.ghi" || m.AuthzID != "svc" || m.Extensions["host"] != "h" {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{"", "n,,", "n,,\x01\x01", "n,,\x01auth=Bearer x\x01", "n,,auth=Bearer x\x01\x01",
		"n,,\x01auth=Basic x\x01\x01", "n,,\x01auth=Bearer \x01\x01", "n,,\x01auth=Bearer x\x01auth=Bearer y\x01\x01",
		"n,,\x01auth=Bearer x\x01=v\x01\x01", "x,,\x01auth=Bearer x\x01\x01", "n,b=c,\x01auth=Bearer x\x01\x01"} {
		if _, err := ParseOAuthBearer([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseOAuthBearer(f *testing.F) {
	f.Add([]byte("n,,\x01auth=Bearer eyJ.eyJ.sig\x01\x01"))
	f.Add([]byte("n,a=u,\x01auth=Bearer t\x01k=v\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseOAuthBearer(b)
		if err == nil && m.Token == "" {
			t.Fatalf("%q: no token", b)
		}
	})
}

func FuzzParseJWT(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseJWT(s)
		if err == nil && (j.Claims == nil || !strings.HasPrefix(s, j.SigningInput+".")) {
			t.Fatalf("%q: %+v", s, j)
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseJWKS(b)
	})
}
