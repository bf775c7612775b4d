// Package sasl is the server side of the SASL mechanisms a runnel listener
// offers: PLAIN (RFC 4616) and SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802,
// RFC 7677) as Kafka speaks them (KIP-84): no channel binding (the GS2
// header is "n,," or "y,,"), the authorization id empty or the user's own
// name, and no delegation tokens (the "tokenauth" extension is refused).
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
// The three parsers of client messages (the PLAIN message, SCRAM's
// client-first and client-final messages) decode untrusted bytes and each
// has a fuzz target.
package sasl
