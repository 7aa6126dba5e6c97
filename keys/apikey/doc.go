// Package apikey owns the text format of Bulwark API keys: generating them,
// printing them and parsing them. Storing, hashing and rotating keys live
// elsewhere (keys/hash for the Argon2id hash, the storage contract for the
// record).
//
// # Format
//
// An API key is a single 66-character token:
//
//	bwk_<id>_<secret><checksum>
//
//	bwk_          fixed prefix ("Bulwark key"), so people and secret scanners
//	              recognise the token
//	<id>          12 base62 characters, random; public. It names the key and
//	              is the lookup key in the database, so verification costs
//	              one indexed read and one hash comparison.
//	_             separator
//	<secret>      43 base62 characters, each drawn uniformly from crypto/rand
//	              by rejection sampling: 43·log2(62) ≈ 256.03 bits. Only its
//	              Argon2id hash is stored.
//	<checksum>    6 base62 characters: CRC-32 (IEEE) of "bwk_<id>_<secret>",
//	              as a big-endian base62 number padded with leading zeros.
//
// base62 is the alphabet 0-9A-Za-z, so a token survives URLs, headers,
// shells and a double-click selection untouched. The checksum lets the
// parser (and secret scanners) reject a mistyped or truncated token before
// any database or hashing work; it is an error check, not a security
// measure. Every single-character change and every truncation is detected.
//
// A regular expression for secret scanners:
//
//	\bbwk_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}\b
//
// Key.String returns the whole token, secret included: print it only to
// the key's holder, once. For logs use Key.Redacted, which keeps the id.
package apikey
