// Package secretbox seals small secrets at rest under Bulwark's master
// secret: private signing keys, pending API-key successor secrets, TOTP
// secrets. It owns the key derivation from the configured master secrets,
// the sealed-blob format, and master-secret rotation.
//
// Several master secrets may be configured, newest first. Seal always uses
// the newest; Open uses whichever configured secret sealed the blob, so the
// master secret can rotate without a flag day: prepend the new secret,
// reseal everything for which NeedsReseal reports true, then drop the old
// one.
//
// Each master secret is stretched with HKDF-SHA256 (info "bulwark secretbox
// v1") into an AES-256 key; a second HKDF output (a different info string)
// gives an 8-byte key identifier, so the identifier reveals nothing about
// the encryption key. A sealed blob is
//
//	version (1 byte, 0x01) || key id (8) || nonce (12, random) || AES-256-GCM ciphertext+tag
//
// The version byte and key id are authenticated together with the caller's
// additional data (for a signing key, its kid), so a blob cannot be moved to
// another row or re-labelled. Every failure to open — unknown key id, wrong
// additional data, any tampered byte — is the one sentinel ErrOpen, whose
// message never contains data.
//
// Random 96-bit nonces are safe here because a master secret seals at most
// thousands of small values over its life, far below the 2^32 messages
// NIST SP 800-38D allows per key with random nonces.
package secretbox
