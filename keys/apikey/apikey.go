package apikey

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Token layout. See the package documentation.
const (
	Prefix      = "bwk_"
	IDLen       = 12
	SecretLen   = 43
	ChecksumLen = 6
	TokenLen    = len(Prefix) + IDLen + 1 + SecretLen + ChecksumLen

	separator   = '_'
	idStart     = len(Prefix)
	sepAt       = idStart + IDLen
	secretStart = sepAt + 1
	checkStart  = secretStart + SecretLen
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

var (
	// ErrMalformed means the token is not shaped like an API key: wrong
	// prefix, length, separator or a character outside base62.
	ErrMalformed = errors.New("apikey: malformed token")
	// ErrChecksum means the token is shaped right but its checksum does not
	// match: a typo or a truncated copy.
	ErrChecksum = errors.New("apikey: checksum mismatch")
	// ErrRandom means the random source failed or kept producing bytes
	// that rejection sampling had to discard.
	ErrRandom = errors.New("apikey: random source failed")
)

// Key is a parsed or generated API key. ID is public; Secret is not.
type Key struct {
	ID     string
	Secret string
}

// Generate makes a new key from r, which is crypto/rand.Reader when nil.
// Passing a reader is for tests; production passes nil.
func Generate(r io.Reader) (Key, error) {
	if r == nil {
		r = rand.Reader
	}
	var out [IDLen + SecretLen]byte
	if err := fill(r, out[:]); err != nil {
		return Key{}, err
	}
	return Key{ID: string(out[:IDLen]), Secret: string(out[IDLen:])}, nil
}

// fill sets every byte of dst to a uniformly random base62 character.
// Bytes ≥ 248 (= 4·62) are discarded so that byte % 62 is unbiased.
func fill(r io.Reader, dst []byte) error {
	const limit = 256 - 256%len(alphabet)
	var buf [64]byte
	n := 0
	// Each byte is kept with probability 248/256; 16 buffers of 64 give up
	// 1024 draws for 55 characters, so only a broken reader runs out.
	for range 16 {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return fmt.Errorf("%w: %w", ErrRandom, err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			dst[n] = alphabet[int(b)%len(alphabet)]
			n++
			if n == len(dst) {
				clear(buf[:])
				return nil
			}
		}
	}
	return fmt.Errorf("%w: too many rejected bytes", ErrRandom)
}

// String returns the full token, secret included. Show it only to the
// key's holder.
func (k Key) String() string {
	b := make([]byte, 0, TokenLen)
	b = append(b, Prefix...)
	b = append(b, k.ID...)
	b = append(b, separator)
	b = append(b, k.Secret...)
	sum := checksum(crc32.ChecksumIEEE(b))
	b = append(b, sum[:]...)
	return string(b)
}

// Redacted returns the token with the secret hidden ("bwk_<id>_…"), for
// logs and audit records.
func (k Key) Redacted() string {
	return Prefix + k.ID + "_…"
}

// GoString keeps %#v from printing the secret.
func (k Key) GoString() string {
	return fmt.Sprintf("apikey.Key{ID: %q, Secret: <redacted>}", k.ID)
}

// Parse checks a presented token's shape and checksum and splits it. It
// does no I/O and no hashing; the returned ID and Secret share memory with
// token. A nil error says nothing about whether the key exists or the
// secret is right.
func Parse(token string) (Key, error) {
	if len(token) != TokenLen || token[:idStart] != Prefix || token[sepAt] != separator {
		return Key{}, ErrMalformed
	}
	for i := idStart; i < TokenLen; i++ {
		if i != sepAt && !isBase62(token[i]) {
			return Key{}, ErrMalformed
		}
	}
	// hash/crc32 takes []byte and dispatches through a function value, so
	// this copy escapes: Parse costs one 64-byte allocation.
	var body [checkStart]byte
	copy(body[:], token)
	want := checksum(crc32.ChecksumIEEE(body[:]))
	if string(want[:]) != token[checkStart:] {
		return Key{}, ErrChecksum
	}
	return Key{ID: token[idStart:sepAt], Secret: token[secretStart:checkStart]}, nil
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// checksum encodes v as ChecksumLen base62 digits, most significant first.
// 62^6 > 2^32, so every CRC-32 fits and the encoding is one-to-one.
func checksum(v uint32) [ChecksumLen]byte {
	var out [ChecksumLen]byte
	for i := ChecksumLen - 1; i >= 0; i-- {
		out[i] = alphabet[v%uint32(len(alphabet))]
		v /= uint32(len(alphabet))
	}
	return out
}
