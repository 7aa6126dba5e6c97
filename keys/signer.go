package keys

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite/token/jwt"
)

// Signer is fosite's jwt.Signer over the ring. Generate signs with the
// current active key of its algorithm (so rotation needs no restart and
// the kid lands in the header); Validate and Decode verify with whichever
// published key the token's kid names, so tokens signed before a rotation
// stay valid while their key is retired, and tokens of a revoked or unknown
// key fail (introspection then reports them inactive).
//
// Do not use compose.NewOAuth2JWTStrategy with a key getter instead: its
// DefaultSigner validates only against the current key, so every token
// would fail the moment its key retires.
type Signer struct {
	ring *Ring
	alg  string
	def  jwt.DefaultSigner
}

var _ jwt.Signer = (*Signer)(nil)

// errKid is why a token's key is not acceptable; ParseWithClaims wraps it
// in a jwt.ValidationError (Unverifiable), which fosite maps to
// ErrTokenSignatureMismatch.
var errKid = errors.New("keys: token key id is missing, unknown or revoked")

// Signer returns a jwt.Signer that signs with alg's active key.
func (r *Ring) Signer(alg string) *Signer {
	s := &Signer{ring: r, alg: alg}
	s.def.GetPrivateKey = func(context.Context) (interface{}, error) { return r.SigningKey(alg) }
	return s
}

// headerFilter lists header parameters that identify the key or algorithm;
// only the ring sets them, so a caller's header cannot make a token claim
// another key or algorithm than the one that signed it.
var headerFilter = []string{"alg", "kid", "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit"}

// Generate signs claims with the active key of the Signer's algorithm.
func (s *Signer) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	if header != nil {
		h := jwt.NewHeaders()
		for k, v := range header.ToMap() {
			h.Extra[k] = v
		}
		for _, k := range headerFilter {
			delete(h.Extra, k)
		}
		header = h
	}
	return s.def.Generate(ctx, claims, header)
}

// Validate verifies token and returns its signature part.
func (s *Signer) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.def.GetSignature(ctx, token)
}

// Decode parses and verifies token with the key its kid names, and checks
// its time claims. Like fosite's DefaultSigner it returns the token along
// with a *jwt.ValidationError when verification fails.
//
// A token that verified is remembered by its hash until it expires, so the
// next Decode of the same bytes skips the signature check; the key it
// names must still be published (not revoked) and of the token's
// algorithm, checked on every call. The returned token is shared between
// callers and must not be modified (fosite and Bulwark only read it).
func (s *Signer) Decode(_ context.Context, token string) (*jwt.Token, error) {
	sum := sha256.Sum256([]byte(token))
	now := s.ring.cfg.Now()
	if t, ok := s.ring.verified.Get(sum, now); ok {
		if _, err := s.keyFunc(t); err == nil {
			return t, nil
		}
	}
	t, err := jwt.ParseWithClaims(token, jwt.MapClaims{}, s.keyFunc)
	if err == nil {
		if exp, ok := t.Claims["exp"]; ok {
			if sec, ok := numericSeconds(exp); ok {
				s.ring.verified.Put(sum, t, time.Unix(sec, 0), now)
			}
		}
	}
	return t, err
}

// numericSeconds reads a NumericDate claim as fosite's parser leaves it.
func numericSeconds(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

func (s *Signer) keyFunc(t *jwt.Token) (interface{}, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errKid
	}
	k, ok := s.ring.VerificationKey(kid)
	if !ok {
		return nil, errKid
	}
	// The header's alg must be the key's: no algorithm substitution.
	if t.Method != jose.SignatureAlgorithm(k.Algorithm) {
		return nil, fmt.Errorf("keys: token alg does not match key %s", kid)
	}
	return k, nil
}

// Hash is SHA-256, as in fosite's DefaultSigner.
func (s *Signer) Hash(ctx context.Context, in []byte) ([]byte, error) {
	return s.def.Hash(ctx, in)
}

// GetSignature returns the signature part of token.
func (s *Signer) GetSignature(ctx context.Context, token string) (string, error) {
	return s.def.GetSignature(ctx, token)
}

// GetSigningMethodLength is the SHA-256 size, as in fosite's DefaultSigner.
func (s *Signer) GetSigningMethodLength(ctx context.Context) int {
	return s.def.GetSigningMethodLength(ctx)
}
