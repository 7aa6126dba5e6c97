package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// NoncePolicy says where a proof must carry the server's nonce (RFC 9449
// §8, §9).
type NoncePolicy int

const (
	// NonceTokenEndpoint requires a nonce at the token endpoint only: a
	// proof made in advance (by malware on the client, say) cannot be
	// used to obtain tokens later, while resource requests cost no extra
	// round trip. The default.
	NonceTokenEndpoint NoncePolicy = iota
	// NonceEverywhere requires it at resource endpoints too (userinfo,
	// forward-auth).
	NonceEverywhere
	// NonceNever requires none; a nonce a proof does carry is still
	// checked.
	NonceNever
)

// ParseNoncePolicy reads "token", "all" or "off".
func ParseNoncePolicy(s string) (NoncePolicy, error) {
	switch s {
	case "token", "":
		return NonceTokenEndpoint, nil
	case "all":
		return NonceEverywhere, nil
	case "off":
		return NonceNever, nil
	}
	return 0, fmt.Errorf("dpop: nonce policy %q: use token, all or off", s)
}

func (p NoncePolicy) String() string {
	switch p {
	case NonceEverywhere:
		return "all"
	case NonceNever:
		return "off"
	}
	return "token"
}

// required reports whether a proof for a token request (resource false) or
// a resource request must carry a nonce.
func (p NoncePolicy) required(resource bool) bool {
	switch p {
	case NonceEverywhere:
		return true
	case NonceNever:
		return false
	}
	return !resource
}

const (
	nonceLabel   = "bulwark/dpop/nonce/v1"
	nonceMACSize = 16
	nonceSize    = 8 + nonceMACSize
)

// Nonce returns the current server nonce: base64url(bucket || MAC), where
// bucket is the current period number and MAC the truncated HMAC-SHA256 of
// it under the newest nonce key. Every replica computes the same value.
func (v *Verifier) Nonce() string {
	return v.nonceFor(v.bucket(), v.nonceKeys[0])
}

func (v *Verifier) bucket() uint64 {
	// #nosec G115 -- the clock is after 1970; a negative time yields bucket 0, which only makes nonces fail.
	return uint64(max(v.now().Unix(), 0)) / uint64(v.noncePeriod/time.Second)
}

func (v *Verifier) nonceFor(bucket uint64, key []byte) string {
	var buf [nonceSize]byte
	binary.BigEndian.PutUint64(buf[:8], bucket)
	copy(buf[8:], nonceMAC(key, buf[:8]))
	return base64.RawURLEncoding.EncodeToString(buf[:])
}

func nonceMAC(key, bucket []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(nonceLabel))
	m.Write(bucket)
	return m.Sum(nil)[:nonceMACSize]
}

// validNonce reports whether n is a nonce of the previous, current or next
// period under any configured key (the newest signs; older ones, kept while
// the master secret rotates, still verify).
func (v *Verifier) validNonce(n string) bool {
	if len(n) != base64.RawURLEncoding.EncodedLen(nonceSize) || strings.ContainsAny(n, "=") {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(raw) != nonceSize {
		return false
	}
	b := binary.BigEndian.Uint64(raw[:8])
	cur := v.bucket()
	if b+1 < cur || b > cur+1 {
		return false
	}
	for _, k := range v.nonceKeys {
		if hmac.Equal(raw[8:], nonceMAC(k, raw[:8])) {
			return true
		}
	}
	return false
}
