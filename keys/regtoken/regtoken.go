package regtoken

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Token prefixes. A prefix makes a leaked token recognisable to secret
// scanners and tells the two kinds apart.
const (
	InitialPrefix      = "bwi_"
	RegistrationPrefix = "bwr_"
)

// randomBytes is the entropy of a token.
const randomBytes = 32

// encodedLen is the length of a token after its prefix.
var encodedLen = base64.RawURLEncoding.EncodedLen(randomBytes)

// MinPepperBytes is the shortest pepper NewHasher accepts.
const MinPepperBytes = 32

// Hasher makes tokens and computes their lookup hashes.
type Hasher struct {
	peppers [][]byte
}

// NewHasher returns a Hasher keyed by peppers, newest first: new hashes
// use the first, lookups try every one.
func NewHasher(peppers ...[]byte) (*Hasher, error) {
	if len(peppers) == 0 {
		return nil, errors.New("regtoken: at least one pepper is required")
	}
	h := &Hasher{}
	for i, p := range peppers {
		if len(p) < MinPepperBytes {
			return nil, fmt.Errorf("regtoken: pepper %d is %d bytes, want at least %d", i, len(p), MinPepperBytes)
		}
		h.peppers = append(h.peppers, append([]byte(nil), p...))
	}
	return h, nil
}

// New returns a fresh token with prefix and its lookup hash.
func (h *Hasher) New(prefix string) (token string, hash []byte, err error) {
	b := make([]byte, randomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("regtoken: random: %w", err)
	}
	token = prefix + base64.RawURLEncoding.EncodeToString(b)
	return token, h.mac(h.peppers[0], token), nil
}

// Lookup returns the hashes token may be stored under (one per pepper).
// It returns nil for a string that is not a well-formed token of prefix,
// so nothing malformed reaches the database.
func (h *Hasher) Lookup(prefix, token string) [][]byte {
	if !WellFormed(prefix, token) {
		return nil
	}
	out := make([][]byte, len(h.peppers))
	for i, p := range h.peppers {
		out[i] = h.mac(p, token)
	}
	return out
}

func (h *Hasher) mac(pepper []byte, token string) []byte {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte(token))
	return m.Sum(nil)
}

// WellFormed reports whether token has prefix and the length and alphabet
// of a token this package made.
func WellFormed(prefix, token string) bool {
	rest, ok := strings.CutPrefix(token, prefix)
	if !ok || len(rest) != encodedLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}
