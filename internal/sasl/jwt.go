package sasl

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha256" // the hashes of the JWS algorithms
	_ "crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// JWT validation for OAUTHBEARER: a compact JWS (RFC 7515) signed with
// RS256/384/512, PS256/384/512 or ES256/384/512 by a key of a JWKS file
// (RFC 7517), whose claims (RFC 7519) name the expected issuer and
// audience, are within their validity window give or take the clock skew,
// and carry the principal in a string claim.

// Errors of JWT validation. Each also wraps ErrAuthentication.
var (
	ErrTokenMalformed = fmt.Errorf("%w: malformed JWT", ErrAuthentication)
	ErrTokenSignature = fmt.Errorf("%w: JWT signature does not verify", ErrAuthentication)
	ErrTokenExpired   = fmt.Errorf("%w: JWT expired", ErrAuthentication)
	ErrTokenClaims    = fmt.Errorf("%w: JWT claims refused", ErrAuthentication)
)

// maxToken bounds a token's length.
const maxToken = 32 << 10

// JWT is a token's decoded parts.
type JWT struct {
	Alg, Kid     string
	Claims       map[string]any // numbers as json.Number
	SigningInput string         // header "." payload, as signed
	Signature    []byte
}

// ParseJWT decodes a compact JWS without verifying it.
func ParseJWT(token string) (JWT, error) {
	var t JWT
	if len(token) > maxToken {
		return t, fmt.Errorf("%w: %d bytes", ErrTokenMalformed, len(token))
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return t, fmt.Errorf("%w: %d parts, want 3", ErrTokenMalformed, len(parts))
	}
	dec := base64.RawURLEncoding.Strict()
	hb, err1 := dec.DecodeString(parts[0])
	pb, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return t, fmt.Errorf("%w: not base64url", ErrTokenMalformed)
	}
	var head struct {
		Alg  string `json:"alg"`
		Kid  string `json:"kid"`
		Typ  string `json:"typ"`
		Crit []any  `json:"crit"`
	}
	if err := json.Unmarshal(hb, &head); err != nil {
		return t, fmt.Errorf("%w: header: %v", ErrTokenMalformed, err)
	}
	if head.Crit != nil {
		return t, fmt.Errorf("%w: critical header parameters", ErrTokenMalformed)
	}
	d := json.NewDecoder(bytes.NewReader(pb))
	d.UseNumber()
	if err := d.Decode(&t.Claims); err != nil || t.Claims == nil {
		return t, fmt.Errorf("%w: claims are not a JSON object", ErrTokenMalformed)
	}
	if d.More() {
		return t, fmt.Errorf("%w: bytes after the claims", ErrTokenMalformed)
	}
	t.Alg, t.Kid, t.SigningInput, t.Signature = head.Alg, head.Kid, parts[0]+"."+parts[1], sig
	return t, nil
}

// jwsAlg is one signature algorithm.
type jwsAlg struct {
	hash  crypto.Hash
	kind  string // "RSA", "PSS", "EC"
	curve elliptic.Curve
}

var jwsAlgs = map[string]jwsAlg{
	"RS256": {crypto.SHA256, "RSA", nil}, "RS384": {crypto.SHA384, "RSA", nil}, "RS512": {crypto.SHA512, "RSA", nil},
	"PS256": {crypto.SHA256, "PSS", nil}, "PS384": {crypto.SHA384, "PSS", nil}, "PS512": {crypto.SHA512, "PSS", nil},
	"ES256": {crypto.SHA256, "EC", elliptic.P256()}, "ES384": {crypto.SHA384, "EC", elliptic.P384()},
	"ES512": {crypto.SHA512, "EC", elliptic.P521()},
}

// jwk is one verification key of a JWKS.
type jwk struct {
	kid, alg string
	key      crypto.PublicKey
}

// parseJWKS decodes a JWK set, keeping its RSA (2048 bits or more) and EC
// (P-256, P-384, P-521) signature keys; keys of other types or uses are
// skipped.
func parseJWKS(b []byte) ([]jwk, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("sasl: JWKS: %w", err)
	}
	dec := base64.RawURLEncoding
	var out []jwk
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		bad := func(what string) error { return fmt.Errorf("sasl: JWKS key %d (kid %q): %s", i, k.Kid, what) }
		switch k.Kty {
		case "RSA":
			n, err1 := dec.DecodeString(k.N)
			e, err2 := dec.DecodeString(k.E)
			if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
				return nil, bad("bad n or e")
			}
			pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
			if pub.N.BitLen() < 2048 || pub.E < 3 || pub.E%2 == 0 {
				return nil, bad("RSA key under 2048 bits or a bad exponent")
			}
			out = append(out, jwk{kid: k.Kid, alg: k.Alg, key: pub})
		case "EC":
			var curve elliptic.Curve
			switch k.Crv {
			case "P-256":
				curve = elliptic.P256()
			case "P-384":
				curve = elliptic.P384()
			case "P-521":
				curve = elliptic.P521()
			default:
				return nil, bad("curve " + k.Crv)
			}
			x, err1 := dec.DecodeString(k.X)
			y, err2 := dec.DecodeString(k.Y)
			size := (curve.Params().BitSize + 7) / 8
			if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
				return nil, bad("bad x or y")
			}
			// The uncompressed point, which ecdsa parses and checks is on
			// the curve.
			pt := append(append([]byte{4}, x...), y...)
			pub, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
			if err != nil {
				return nil, bad(err.Error())
			}
			out = append(out, jwk{kid: k.Kid, alg: k.Alg, key: pub})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("sasl: JWKS has no RSA or EC signature key")
	}
	return out, nil
}

// verify checks the signature with key.
func (a jwsAlg) verify(key crypto.PublicKey, input string, sig []byte) bool {
	h := a.hash.New()
	h.Write([]byte(input))
	digest := h.Sum(nil)
	switch pub := key.(type) {
	case *rsa.PublicKey:
		switch a.kind {
		case "RSA":
			return rsa.VerifyPKCS1v15(pub, a.hash, digest, sig) == nil
		case "PSS":
			return rsa.VerifyPSS(pub, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}
	case *ecdsa.PublicKey:
		size := (a.curve.Params().BitSize + 7) / 8
		if a.kind != "EC" || pub.Curve != a.curve || len(sig) != 2*size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(pub, digest, r, s)
	}
	return false
}

// JWTOptions configure a JWTValidator. Kafka's names are in parentheses.
type JWTOptions struct {
	// JWKSFile holds the keys tokens are signed with; it is read again
	// when it changes (sasl.oauthbearer.jwks.endpoint.url with file://).
	JWKSFile string
	// Issuer, if set, must be the token's iss
	// (sasl.oauthbearer.expected.issuer).
	Issuer string
	// Audience, if set, must be the token's aud or one of them
	// (sasl.oauthbearer.expected.audience).
	Audience string
	// PrincipalClaim names the string claim that is the principal
	// (sasl.oauthbearer.sub.claim.name). Default "sub".
	PrincipalClaim string
	// ClockSkew is allowed on exp, nbf and iat
	// (sasl.oauthbearer.clock.skew.seconds). Default 30 s.
	ClockSkew time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// JWTValidator validates OAUTHBEARER tokens. It is safe for concurrent
// use.
type JWTValidator struct {
	o  JWTOptions
	mu struct {
		sync.Mutex
		keys []jwk
		stat os.FileInfo
	}
}

// NewJWTValidator loads the JWKS file and returns the validator.
func NewJWTValidator(o JWTOptions) (*JWTValidator, error) {
	if o.PrincipalClaim == "" {
		o.PrincipalClaim = "sub"
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &JWTValidator{o: o}
	if _, err := v.keys(); err != nil {
		return nil, err
	}
	return v, nil
}

// keys returns the JWKS, reloaded when the file changed; a reload that
// fails keeps the keys loaded before.
func (v *JWTValidator) keys() ([]jwk, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fi, err := os.Stat(v.o.JWKSFile)
	if err == nil && v.mu.stat != nil && fi.Size() == v.mu.stat.Size() && fi.ModTime().Equal(v.mu.stat.ModTime()) && os.SameFile(fi, v.mu.stat) {
		return v.mu.keys, nil
	}
	var keys []jwk
	if err == nil {
		var b []byte
		if b, err = os.ReadFile(v.o.JWKSFile); err == nil {
			keys, err = parseJWKS(b)
		}
	}
	if err != nil {
		if v.mu.keys != nil {
			return v.mu.keys, nil
		}
		return nil, fmt.Errorf("sasl: OAUTHBEARER JWKS file %s: %w", v.o.JWKSFile, err)
	}
	v.mu.keys, v.mu.stat = keys, fi
	return keys, nil
}

// Validate verifies the token's signature and claims, and returns its
// principal claim and expiry.
func (v *JWTValidator) Validate(token string) (string, time.Time, error) {
	t, err := ParseJWT(token)
	if err != nil {
		return "", time.Time{}, err
	}
	alg, ok := jwsAlgs[t.Alg]
	if !ok {
		return "", time.Time{}, fmt.Errorf("%w: algorithm %q", ErrTokenSignature, t.Alg)
	}
	keys, err := v.keys()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %w", ErrAuthentication, err)
	}
	verified := false
	for _, k := range keys {
		if (t.Kid != "" && k.kid != t.Kid) || (k.alg != "" && k.alg != t.Alg) {
			continue
		}
		if alg.verify(k.key, t.SigningInput, t.Signature) {
			verified = true
			break
		}
	}
	if !verified {
		return "", time.Time{}, fmt.Errorf("%w (alg %s, kid %q)", ErrTokenSignature, t.Alg, t.Kid)
	}
	now, skew := v.o.Now(), v.o.ClockSkew
	exp, ok := numericDate(t.Claims["exp"])
	if !ok {
		return "", time.Time{}, fmt.Errorf("%w: no exp", ErrTokenClaims)
	}
	if !now.Before(exp.Add(skew)) {
		return "", time.Time{}, fmt.Errorf("%w at %s", ErrTokenExpired, exp.UTC().Format(time.RFC3339))
	}
	for _, c := range []string{"nbf", "iat"} {
		if raw, present := t.Claims[c]; present {
			at, ok := numericDate(raw)
			if !ok {
				return "", time.Time{}, fmt.Errorf("%w: %s is not a date", ErrTokenClaims, c)
			}
			if at.After(now.Add(skew)) {
				return "", time.Time{}, fmt.Errorf("%w: %s is in the future", ErrTokenClaims, c)
			}
		}
	}
	if v.o.Issuer != "" {
		if iss, _ := t.Claims["iss"].(string); iss != v.o.Issuer {
			return "", time.Time{}, fmt.Errorf("%w: issuer %q, want %q", ErrTokenClaims, iss, v.o.Issuer)
		}
	}
	if v.o.Audience != "" && !hasAudience(t.Claims["aud"], v.o.Audience) {
		return "", time.Time{}, fmt.Errorf("%w: audience is not %q", ErrTokenClaims, v.o.Audience)
	}
	principal, _ := t.Claims[v.o.PrincipalClaim].(string)
	if principal == "" {
		return "", time.Time{}, fmt.Errorf("%w: no %s claim", ErrTokenClaims, v.o.PrincipalClaim)
	}
	return principal, exp, nil
}

func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return slices.ContainsFunc(a, func(x any) bool { s, _ := x.(string); return s == want })
	}
	return false
}
