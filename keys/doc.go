// Package keys owns Bulwark's signing key ring: it generates ES256, RS256
// (RSA-3072) and EdDSA (Ed25519) keys, stores their private halves only
// sealed under the master secret, moves them through the life cycle
// next → active → retired (or → revoked at any time) on a schedule that
// every replica runs but only one performs, and publishes the public halves
// as pre-rendered JWKS bytes with a strong ETag.
//
// Timeline for one algorithm, with the defaults:
//
//	t0                 t0+30d               t0+60d
//	K1 active ────────▶ K1 retired (7d) ──▶ deleted
//	K2 next (published) K2 active ─────────▶ K2 retired
//	                    K3 next (published)  K3 active
//
// A next key is published at least LeadTime before it signs, and JWKS
// responses may be cached for at most JWKSMaxAge ≤ LeadTime, so every
// resource server that honours Cache-Control holds a key before the first
// token it signs. A retired key stays published for Retention, which must
// outlast every token it signed. A revoked key leaves the JWKS at once and
// tokens it signed fail Signer.Validate immediately (and at caching
// resource servers within JWKSMaxAge).
//
// Subpackages own the secret box (keys/secretbox), Argon2id hashing
// (keys/hash) and API keys (keys/apikey); this package talks to storage only
// through storage.SigningKeyStore, storage.Locker and storage.Notifier.
package keys
