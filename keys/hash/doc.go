// Package hash owns how Bulwark stores and verifies secrets: Argon2id in
// PHC string form for client secrets, API-key secrets and passwords, and
// the in-memory verification cache that makes repeat authentication cheap.
//
// Hasher and Cached both implement fosite.Hasher, so either plugs into
// fosite's Config.ClientSecretsHasher. fosite calls Compare(ctx, storedHash,
// presentedSecret).
//
// # Stored form
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// Salt and hash are unpadded standard base64. The parameters travel inside
// the string, so they can be raised without invalidating stored hashes:
// after a successful Compare, callers check NeedsRehash and, if it is true,
// store Hash(secret) in place of the old string. Decoding bounds every
// parameter (memory ≤ 1 GiB, t ≤ 16, p ≤ 16, salt and hash ≤ 64 bytes) and
// rejects anything else with ErrInvalidHash before any work or allocation,
// so a hostile or corrupted row cannot make the server allocate unbounded
// memory or spin.
//
// # Timing
//
// DummyCompare burns the work of one real comparison. Callers use it when the
// user, client or API-key id is unknown, so "unknown id" and "wrong secret"
// take the same time and cannot be told apart from outside.
//
// # Verification cache
//
// Argon2id is slow on purpose (about 28 ms at the default parameters). Cached
// remembers a successful verification for a short TTL under
// HMAC-SHA256(pepper, storedHash, presentedSecret), where the pepper is 32
// random bytes made per process and never leaves it. Steady-state
// authentication of a machine client then costs microseconds, while what is
// at rest is unchanged. Failures are never cached. Evict drops every entry of
// one stored hash (an API key was revoked, a client secret changed); Purge
// drops everything (for example after missing change notifications).
//
// The cache trades memory exposure for speed: someone who can read the
// process memory obtains the pepper and can test guesses at HMAC speed
// against cached entries. That is harmless for high-entropy secrets (client
// secrets, API keys) and is why Cached is meant for those, not for user
// passwords, which should go through the plain Hasher.
package hash
