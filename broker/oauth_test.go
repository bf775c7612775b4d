package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/runnel-io/runnel/internal/sasl"
)

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// es256 signs claims with key as an ES256 JWT of key id kid.
func es256(t *testing.T, key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": kid})
	cb, _ := json.Marshal(claims)
	input := b64url(hb) + "." + b64url(cb)
	d := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64url(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
}

// TestOAuthBearerListener: a broker with OAUTHBEARER and SCRAM on one
// SASL_PLAINTEXT listener serves franz-go with a token signed by a key of
// the JWKS file and with a password; an expired token, a token for
// another audience and one signed by another key are refused.
func TestOAuthBearerListener(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := key.PublicKey.Bytes()
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "EC", "kid": "k1", "crv": "P-256", "x": b64url(pt[1:33]), "y": b64url(pt[33:])}}})
	cfg := testConfig(t)
	cfg.SASL.OAuth.JWKSFile = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(cfg.SASL.OAuth.JWKSFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.SASL.OAuth.Issuer, cfg.SASL.OAuth.Audience = "https://idp.example", "kafka"
	cfg.Listeners = []ListenerAddr{{"PLAINTEXT", "127.0.0.1:0"}, {"SASL_PLAINTEXT", "127.0.0.1:0"}}
	cfg.SASL.Mechanisms = []string{sasl.OAuthBearer, sasl.ScramSHA512}
	cfg.SASL.Users = []ScramUserSpec{{"admin", sasl.SHA512, "secret"}}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		b.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	addr := b.ListenerAddr("SASL_PLAINTEXT")
	claims := func(aud string, exp time.Time) map[string]any {
		return map[string]any{"sub": "svc-orders", "iss": "https://idp.example", "aud": aud, "exp": exp.Unix(), "iat": time.Now().Unix()}
	}
	good := es256(t, key, "k1", claims("kafka", time.Now().Add(time.Hour)))
	produceConsume(t, ctx, "oauth", 5, saslOpts(addr, kgo.SASL(oauth.Auth{Token: good}.AsMechanism()))...)

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tok := range map[string]string{
		"expired":        es256(t, key, "k1", claims("kafka", time.Now().Add(-time.Hour))),
		"other audience": es256(t, key, "k1", claims("web", time.Now().Add(time.Hour))),
		"other key":      es256(t, other, "k1", claims("kafka", time.Now().Add(time.Hour))),
	} {
		cl, err := kgo.NewClient(saslOpts(addr, kgo.SASL(oauth.Auth{Token: tok}.AsMechanism()))...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		cl.Close()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s token: %v, want a refusal", name, err)
		}
	}
}
