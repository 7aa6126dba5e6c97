// Package dpop verifies DPoP proofs (RFC 9449, OAuth 2.0 Demonstrating
// Proof of Possession) and issues the server's DPoP nonces.
//
// A Verifier is built once and shared by every endpoint that accepts
// proofs: the token endpoint (which binds the tokens it issues to the
// proof's key, cnf.jkt = the RFC 7638 thumbprint), and the resource
// endpoints (userinfo, forward-auth), which also check ath, the hash of the
// access token the proof accompanies.
//
// Every check of RFC 9449 §4.3 is made here, in one place: exactly one DPoP
// header, a compact JWS no larger than MaxProofBytes, typ dpop+jwt, an
// algorithm on the allow-list (ES256, EdDSA, RS256 and PS256 with RSA keys of
// at least 2048 bits), a public jwk that verifies the signature, htm and htu
// matching the request (htu compared after normalization against a URL the
// caller builds from configuration, never from a Host header), iat within
// the window, ath on resource requests, the server nonce where the policy
// asks for one, and jti never seen before.
//
// A jti is remembered in the store (ReplayStore, storage.DPoPProofStore)
// for every replica at once: one INSERT … ON CONFLICT DO NOTHING decides
// whether a proof is fresh, so a proof replayed on another replica is
// refused as surely as on the same one.
//
// Nonces are stateless: an HMAC of a time bucket under a key derived from
// the master secret, so every replica issues and accepts the same values
// without coordination. The current and the previous bucket are accepted
// (and the next one, for a replica whose clock runs slightly ahead).
package dpop
