// Package sasl is the server side of the SASL mechanisms a runnel listener
// offers: PLAIN (RFC 4616), SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802,
// RFC 7677) as Kafka speaks them (KIP-84): no channel binding (the GS2
// header is "n,," or "y,,"), the authorization id empty or the user's own
// name, and no delegation tokens (the "tokenauth" extension is refused);
// and OAUTHBEARER (RFC 7628, Kafka's KIP-255) with JWTs checked against a
// JWKS file (JWTValidator).
//
// A Conversation is one client's exchange: the server feeds it each token
// the client sends and writes back what it returns, until Done. It holds
// no lock and is used by one connection at a time.
//
// # Credentials
//
// Passwords are never stored. A SCRAM credential is the salt, the
// iteration count and the two keys derived from the salted password
// (StoredKey and ServerKey, RFC 5802 section 3); a PLAIN password is
// checked by deriving StoredKey from it with a stored credential's salt
// and iterations and comparing. Every comparison of secret bytes is
// constant-time (crypto/hmac.Equal).
//
// # Unknown users
//
// A SCRAM server that answered an unknown user at once would tell a
// client which names exist. A Conversation answers an unknown user as it
// answers a known one: with a salt and an iteration count derived from the
// user name and a secret of the cluster (Options.Secret), the same at every
// attempt and on every broker, and it fails at the proof after the same
// computation a real proof takes. PLAIN likewise derives the password
// against a made-up credential before it fails.
//
// # OAUTHBEARER
//
// The client's one message carries a bearer token, a JWS signed by a key
// of the JWKS file (RS256/384/512, PS256/384/512, ES256/384/512; never
// "none" or a shared secret), whose exp, nbf and iat hold within the clock
// skew and whose iss and aud are the expected ones; the principal is a
// string claim (sub by default). A refused token is answered, as Kafka
// answers it, with the error status {"status":"invalid_token"} as a
// challenge (FailedChallenge); the client's 0x01 then ends the exchange
// with the error. The JWKS file is read again when it changes.
//
// The parsers of client messages (the PLAIN message, SCRAM's client-first
// and client-final messages, the OAUTHBEARER message, the JWT and the
// JWKS) decode untrusted bytes and each has a fuzz target.
package sasl
