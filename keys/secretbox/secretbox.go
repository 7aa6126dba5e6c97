package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"
)

// MinSecretLen is the minimum length of a master secret in bytes.
const MinSecretLen = 32

const (
	version       byte = 1
	kidLen             = 8
	nonceLen           = 12
	tagLen             = 16
	headerLen          = 1 + kidLen
	overhead           = headerLen + nonceLen + tagLen
	keyInfo            = "bulwark secretbox v1"
	kidInfo            = "bulwark secretbox v1 key id"
	derivedKeyLen      = 32
)

// ErrOpen is returned by Open for every failure: malformed blob, unknown
// master secret, wrong additional data or tampering. The causes are not
// distinguished on purpose; none of them is actionable by a caller other
// than "this blob is unusable with the configured secrets".
var ErrOpen = errors.New("secretbox: cannot open sealed value")

// ErrNoSecrets is returned by New when no master secret is configured.
var ErrNoSecrets = errors.New("secretbox: no master secret configured")

type key struct {
	id   [kidLen]byte
	aead cipher.AEAD
}

// Box seals and opens values under the configured master secrets. It is
// safe for concurrent use.
type Box struct {
	// keys[0] is the newest secret's key; Seal always uses it.
	keys []key
}

// New derives the box keys from the master secrets, newest first. Every
// secret must be at least MinSecretLen bytes; two identical secrets are
// refused because they would make rotation meaningless. The secrets are not
// retained.
func New(secrets [][]byte) (*Box, error) {
	if len(secrets) == 0 {
		return nil, ErrNoSecrets
	}
	b := &Box{keys: make([]key, 0, len(secrets))}
	for i, s := range secrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("secretbox: master secret %d is %d bytes, need at least %d", i, len(s), MinSecretLen)
		}
		k, err := deriveKey(s)
		if err != nil {
			return nil, fmt.Errorf("secretbox: master secret %d: %w", i, err)
		}
		for j, prev := range b.keys {
			if prev.id == k.id {
				return nil, fmt.Errorf("secretbox: master secret %d duplicates secret %d", i, j)
			}
		}
		b.keys = append(b.keys, k)
	}
	return b, nil
}

func deriveKey(secret []byte) (key, error) {
	var k key
	encKey := make([]byte, derivedKeyLen)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte(keyInfo)), encKey); err != nil {
		return k, fmt.Errorf("derive key: %w", err)
	}
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte(kidInfo)), k.id[:]); err != nil {
		return k, fmt.Errorf("derive key id: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return k, fmt.Errorf("aes: %w", err)
	}
	k.aead, err = cipher.NewGCM(block)
	if err != nil {
		return k, fmt.Errorf("gcm: %w", err)
	}
	return k, nil
}

// Seal encrypts plaintext under the newest master secret, binding aad (for
// example the kid of the signing key being sealed). The result is
// len(plaintext)+37 bytes.
func (b *Box) Seal(plaintext, aad []byte) ([]byte, error) {
	k := &b.keys[0]
	out := make([]byte, headerLen+nonceLen, overhead+len(plaintext))
	out[0] = version
	copy(out[1:headerLen], k.id[:])
	nonce := out[headerLen : headerLen+nonceLen]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secretbox: nonce: %w", err)
	}
	return k.aead.Seal(out, nonce, plaintext, additionalData(out[:headerLen], aad)), nil
}

// Open decrypts a value sealed by Seal under any configured master secret.
// Every failure is ErrOpen.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	k := b.find(sealed)
	if k == nil {
		return nil, ErrOpen
	}
	nonce := sealed[headerLen : headerLen+nonceLen]
	pt, err := k.aead.Open(nil, nonce, sealed[headerLen+nonceLen:], additionalData(sealed[:headerLen], aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// NeedsReseal reports whether sealed was not sealed under the newest master
// secret (including values that cannot be parsed at all). It does not
// authenticate the blob; Open does.
func (b *Box) NeedsReseal(sealed []byte) bool {
	k := b.find(sealed)
	return k != &b.keys[0]
}

// Reseal opens sealed with whichever secret sealed it and seals the
// plaintext again under the newest one, with the same aad.
func (b *Box) Reseal(sealed, aad []byte) ([]byte, error) {
	pt, err := b.Open(sealed, aad)
	if err != nil {
		return nil, err
	}
	out, err := b.Seal(pt, aad)
	clear(pt)
	return out, err
}

// find returns the key that sealed the blob, or nil if the blob is too short,
// of another version, or sealed under a secret that is not configured.
func (b *Box) find(sealed []byte) *key {
	if len(sealed) < overhead || sealed[0] != version {
		return nil
	}
	id := sealed[1:headerLen]
	for i := range b.keys {
		// The key id is public, but constant-time comparison costs nothing.
		if subtle.ConstantTimeCompare(b.keys[i].id[:], id) == 1 {
			return &b.keys[i]
		}
	}
	return nil
}

// additionalData authenticates the header along with the caller's aad. The
// header has a fixed length, so header and aad cannot be confused.
func additionalData(header, aad []byte) []byte {
	ad := make([]byte, 0, len(header)+len(aad))
	ad = append(ad, header...)
	return append(ad, aad...)
}
