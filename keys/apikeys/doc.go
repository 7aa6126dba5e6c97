// Package apikeys is the API key service: it creates keys, verifies
// presented tokens, rotates keys on a schedule or on request, hands the
// successor's secret to the holder of the old key exactly once, revokes
// keys, expires them, and records last use in batches.
//
// It owns the life-cycle rules; the token format belongs to keys/apikey,
// hashing and the verification cache to keys/hash, sealing of pending
// successor secrets to keys/secretbox, persistence to storage.APIKeyStore.
// HTTP authentication with API keys lives in server/apikeyauth.
//
// # Verification
//
// Verify parses the token without I/O (a malformed or mistyped token never
// reaches the database), reads the key row by id (one indexed SELECT, which
// also gives the current status, so a revocation is effective on every
// replica at once), and compares the secret through hash.Cached. An unknown
// id runs DummyCompare, so it costs one Argon2id computation like a wrong
// secret and returns the same ErrInvalid. Status is revealed (ErrRevoked,
// ErrExpired) only after the secret matched: someone without the secret
// learns nothing about any key.
//
// # Rotation and handover
//
// Each key has a rotation period and a grace period. When a key is due,
// the scheduler (one replica, under the Locker "bulwark:apikeys") creates
// its successor and moves the old key to "rotating" with ExpiresAt at the
// end of grace. The successor's secret is kept sealed under the master
// secret on the OLD key's row (additional data: the old key id) until the
// holder collects it with CollectOrRotate, authenticated by the old key;
// it is then erased, so it is handed out once. Callers notice a pending
// rotation because Verify reports the key's status "rotating". When grace
// ends the old key expires and any uncollected secret is erased.
//
// # Containment
//
// A rotation chain is one credential: Revoke revokes the key with every
// predecessor and successor (RevokeAPIKeyChain, one statement), and
// RevokeOwner revokes every key of a client or user being contained
// (RevokeAPIKeysByOwner, one statement). The store serializes both with
// RotateAPIKey per owner, so a successor minted concurrently is covered or
// never created. Tokens exchanged from a key ask Usable at introspection.
//
// # Replicas
//
// Revocation, rotation and expiry publish the key id on the Notifier
// channel "bulwark_apikeys"; every replica running Run evicts that key's
// verification from its hash cache. Last use is kept in memory and written
// with one TouchAPIKeys statement every TouchInterval.
package apikeys
