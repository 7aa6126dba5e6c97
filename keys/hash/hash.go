package hash

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/ory/fosite"
	"golang.org/x/crypto/argon2"
)

var (
	// ErrMismatch is returned by Compare when the secret does not match the
	// stored hash.
	ErrMismatch = errors.New("argon2id: secret does not match")

	// ErrInvalidHash is returned when a stored hash is not a well-formed
	// Argon2id PHC string within the accepted parameter bounds.
	ErrInvalidHash = errors.New("argon2id: invalid hash")

	// ErrInvalidParams is returned by New for parameters out of bounds.
	ErrInvalidParams = errors.New("argon2id: invalid parameters")
)

// Bounds on parameters, both for New and for decoding stored hashes. They
// are generous for legitimate tuning and small enough that a hostile row
// cannot exhaust memory or CPU.
const (
	MaxMemory  = 1 << 20 // KiB, i.e. 1 GiB
	MaxTime    = 16
	MaxThreads = 16
	MinSaltLen = 8
	MaxSaltLen = 64
	MinKeyLen  = 16
	MaxKeyLen  = 64

	// maxEncodedLen bounds the whole PHC string, checked before parsing:
	// the longest valid string is about 210 bytes.
	maxEncodedLen = 256
	phcPrefix     = "$argon2id$v=19$"
)

// Params are the Argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams returns the OWASP Password Storage Cheat Sheet minimum for
// Argon2id: 19 MiB, two passes, one lane, 16-byte salt, 32-byte hash.
func DefaultParams() Params {
	return Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Validate reports whether p is within the bounds this package accepts.
// These are structural bounds; choosing a cost strong enough for the
// deployment (DefaultParams or higher) is configuration's job.
func (p Params) Validate() error {
	switch {
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("%w: threads must be 1..%d", ErrInvalidParams, MaxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > MaxMemory:
		// Argon2 needs at least 8 KiB per lane.
		return fmt.Errorf("%w: memory must be %d..%d KiB", ErrInvalidParams, 8*uint32(p.Threads), MaxMemory)
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("%w: time must be 1..%d", ErrInvalidParams, MaxTime)
	case p.SaltLen < MinSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("%w: salt length must be %d..%d", ErrInvalidParams, MinSaltLen, MaxSaltLen)
	case p.KeyLen < MinKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("%w: key length must be %d..%d", ErrInvalidParams, MinKeyLen, MaxKeyLen)
	}
	return nil
}

// Hasher hashes and verifies secrets with Argon2id. It is safe for
// concurrent use.
type Hasher struct {
	params Params
	// dummy is a hash of a random secret made at construction, the target
	// of DummyCompare.
	dummy []byte
}

var _ fosite.Hasher = (*Hasher)(nil)

// New returns a Hasher that hashes with p. It computes one hash up front
// (the DummyCompare target), so construction costs one Argon2id run.
func New(p Params) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	h := &Hasher{params: p}
	var secret [32]byte
	_, _ = rand.Read(secret[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	dummy, err := h.Hash(context.Background(), secret[:])
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC string of data under a fresh random salt.
func (h *Hasher) Hash(ctx context.Context, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := h.params
	salt := make([]byte, p.SaltLen)
	_, _ = rand.Read(salt)
	key := argon2.IDKey(data, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return encode(p, salt, key), nil
}

// Compare verifies data against a stored PHC string (stored hash first, as
// fosite calls it). It returns nil on a match, ErrMismatch on a wrong
// secret and an error wrapping ErrInvalidHash when hash cannot be used.
func (h *Hasher) Compare(ctx context.Context, hash, data []byte) error {
	d, err := decode(hash)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := d.params
	got := argon2.IDKey(data, d.salt[:p.SaltLen], p.Time, p.Memory, p.Threads, p.KeyLen)
	if subtle.ConstantTimeCompare(got, d.key[:p.KeyLen]) != 1 {
		return ErrMismatch
	}
	return nil
}

// NeedsRehash reports whether hash was made with parameters other than the
// Hasher's (or cannot be decoded). Call it only after Compare succeeded, and
// then store Hash(secret) in place of hash: the plaintext secret is only
// available at that moment.
func (h *Hasher) NeedsRehash(hash []byte) bool {
	d, err := decode(hash)
	return err != nil || d.params != h.params
}

// DummyCompare does the work of one Compare against a hash of a random
// secret and discards the result. Call it when the presented identifier
// (username, client id, API-key id) is unknown, so the response takes as
// long as a wrong secret would.
func (h *Hasher) DummyCompare(ctx context.Context, data []byte) {
	_ = h.Compare(ctx, h.dummy, data)
}

func encode(p Params, salt, key []byte) []byte {
	enc := base64.RawStdEncoding
	out := make([]byte, 0, len(phcPrefix)+40+enc.EncodedLen(len(salt))+enc.EncodedLen(len(key)))
	out = append(out, phcPrefix...)
	out = append(out, "m="...)
	out = strconv.AppendUint(out, uint64(p.Memory), 10)
	out = append(out, ",t="...)
	out = strconv.AppendUint(out, uint64(p.Time), 10)
	out = append(out, ",p="...)
	out = strconv.AppendUint(out, uint64(p.Threads), 10)
	out = append(out, '$')
	out = enc.AppendEncode(out, salt)
	out = append(out, '$')
	return enc.AppendEncode(out, key)
}

// decoded holds a parsed PHC string in fixed arrays, so that decoding (and
// rejecting) allocates nothing.
type decoded struct {
	params Params
	salt   [MaxSaltLen]byte
	key    [MaxKeyLen]byte
}

// Decoding errors are prebuilt so rejecting a hostile hash allocates nothing.
// They name the problem, never the content.
var (
	errFormat  = fmt.Errorf("%w: not an argon2id v19 PHC string", ErrInvalidHash)
	errParams  = fmt.Errorf("%w: parameters out of bounds", ErrInvalidHash)
	errEncoded = fmt.Errorf("%w: bad salt or hash encoding", ErrInvalidHash)
)

// decode parses "$argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<hash>". It checks
// lengths and bounds before decoding base64 and accepts only the canonical
// form (no leading zeros, no padding, no stray bits), so one secret has one
// stored representation per salt.
func decode(hash []byte) (decoded, error) {
	var d decoded
	if len(hash) > maxEncodedLen || len(hash) < len(phcPrefix) || string(hash[:len(phcPrefix)]) != phcPrefix {
		return d, errFormat
	}
	rest := hash[len(phcPrefix):]
	m, rest, ok := field(rest, "m=", ',')
	if !ok {
		return d, errFormat
	}
	t, rest, ok := field(rest, "t=", ',')
	if !ok {
		return d, errFormat
	}
	p, rest, ok := field(rest, "p=", '$')
	if !ok {
		return d, errFormat
	}
	i := bytes.IndexByte(rest, '$')
	if i < 0 {
		return d, errFormat
	}
	saltB64, keyB64 := rest[:i], rest[i+1:]

	enc := base64.RawStdEncoding.Strict()
	saltLen, keyLen := enc.DecodedLen(len(saltB64)), enc.DecodedLen(len(keyB64))
	if p < 1 || p > MaxThreads || m < 8*p || m > MaxMemory || t < 1 || t > MaxTime ||
		saltLen < MinSaltLen || saltLen > MaxSaltLen || keyLen < MinKeyLen || keyLen > MaxKeyLen {
		return d, errParams
	}
	if n, err := enc.Decode(d.salt[:], saltB64); err != nil || n != saltLen {
		return d, errEncoded
	}
	if n, err := enc.Decode(d.key[:], keyB64); err != nil || n != keyLen {
		return d, errEncoded
	}
	d.params = Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(p), SaltLen: uint32(saltLen), KeyLen: uint32(keyLen)}
	return d, nil
}

// field parses name, a canonical decimal of at most 7 digits (enough for
// MaxMemory; larger values are out of bounds anyway) and the terminator.
func field(s []byte, name string, term byte) (uint64, []byte, bool) {
	if len(s) < len(name) || string(s[:len(name)]) != name {
		return 0, nil, false
	}
	s = s[len(name):]
	var v uint64
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		if n == 7 || (n == 1 && s[0] == '0') {
			return 0, nil, false
		}
		v = v*10 + uint64(s[n]-'0')
		n++
	}
	if n == 0 || n >= len(s) || s[n] != term {
		return 0, nil, false
	}
	return v, s[n+1:], true
}
