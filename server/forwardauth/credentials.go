package forwardauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/keys/apikey"
	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// JWTDecoder verifies a JWT's signature with the key ring and decodes it
// (keys.Signer: the key its kid names, no algorithm substitution).
type JWTDecoder interface {
	Decode(ctx context.Context, token string) (*jwt.Token, error)
}

// APIKeys verifies API keys (keys/apikeys.Service, itself backed by the
// Argon2id verification cache).
type APIKeys interface {
	Verify(ctx context.Context, token string) (*apikeys.Principal, *storage.APIKey, error)
}

// identity is who a verified credential speaks for.
type identity struct {
	tokenType string // "jwt" or "api_key"
	subject   string
	clientID  string
	scopes    []string
	audience  []string
	// limitKey names the rate-limit bucket: the client for JWTs, the key
	// for API keys.
	limitKey string
	// charged is set when this request already took from the bucket.
	charged bool
}

// Token types in X-Auth-Token-Type.
const (
	typeJWT    = "jwt"
	typeAPIKey = "api_key"
)

// denial is a refused check: the reason label and the RFC 6750 error.
type denial struct {
	reason string
	status int
	code   string // RFC 6750 §3.1 error code; "" for a bare challenge
	desc   string
	scope  string // insufficient_scope: what the route needs
	dpop   bool   // the challenge is the DPoP scheme's (RFC 9449 §7.1)
}

func (d *denial) Error() string { return "forwardauth: denied: " + d.reason }

func deny(reason string, status int, code, desc string) *denial {
	return &denial{reason: reason, status: status, code: code, desc: desc}
}

// denyDPoP is a denial answered with the DPoP scheme's challenge.
func denyDPoP(reason string, status int, code, desc string) *denial {
	d := deny(reason, status, code, desc)
	d.dpop = true
	return d
}

// verifiedJWT is what a JWT's signature check establishes; it is cached by
// the token's hash until the token expires, so a token seen again costs a
// map lookup instead of a signature verification.
type verifiedJWT struct {
	id        identity
	kid       string // the ring key that signed it
	key       string // storage.HashKey(signature): the store's key
	signature string
	issuedAt  time.Time
	expiresAt time.Time
	// jkt is the token's cnf.jkt (RFC 9449 §6.1): the thumbprint of the
	// DPoP key it is bound to; empty for a bearer token.
	jkt string
}

// verifyJWT checks an RFC 9068 access token: signature by a published ring
// key, typ at+jwt (so an ID token signed by the same ring is refused),
// issuer, and presence of exp (RFC 9068 §4). Expiry and revocation are
// checked by the caller on every request, cached or not.
func (h *Handler) verifyJWT(ctx context.Context, token string) (*verifiedJWT, error) {
	sum := sha256.Sum256([]byte(token))
	if v, ok := h.jwts.Get(sum, h.cfg.Now()); ok {
		// A signing key revoked since (containment) takes its tokens
		// with it, cached or not.
		if !h.cfg.KeyPublished(v.kid) {
			return nil, deny(reasonInvalidToken, 401, "invalid_token", "The access token is invalid.")
		}
		return v, nil
	}
	tok, err := h.cfg.JWT.Decode(ctx, token)
	if err != nil {
		var ve *jwt.ValidationError
		if errors.As(err, &ve) && ve.Errors == jwt.ValidationErrorExpired {
			return nil, deny(reasonExpired, 401, "invalid_token", "The access token expired.")
		}
		return nil, deny(reasonInvalidToken, 401, "invalid_token", "The access token is invalid.")
	}
	if typ, _ := tok.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, deny(reasonInvalidToken, 401, "invalid_token", "The token is not an access token.")
	}
	c := tok.Claims
	if iss, _ := c["iss"].(string); iss != h.cfg.Issuer {
		return nil, deny(reasonInvalidToken, 401, "invalid_token", "The access token is invalid.")
	}
	exp, okExp := numericDate(c["exp"])
	iat, okIat := numericDate(c["iat"])
	if !okExp || !okIat {
		return nil, deny(reasonInvalidToken, 401, "invalid_token", "The access token is invalid.")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, deny(reasonInvalidToken, 401, "invalid_token", "The access token is invalid.")
	}
	kid, _ := tok.Header["kid"].(string)
	v := &verifiedJWT{
		kid:       kid,
		key:       storage.HashKey(parts[2]),
		signature: parts[2],
		issuedAt:  iat,
		expiresAt: exp,
	}
	v.id.tokenType = typeJWT
	v.id.subject, _ = c["sub"].(string)
	v.id.clientID, _ = c["client_id"].(string)
	v.id.limitKey = "client:" + v.id.clientID
	if cnf, ok := c["cnf"].(map[string]any); ok {
		if jkt, ok := cnf["jkt"].(string); ok && jkt != "" {
			v.jkt = jkt
		} else {
			// A confirmation this server did not issue: refuse rather
			// than treat the token as a bearer token.
			return nil, deny(reasonInvalidToken, 401, "invalid_token", "The access token is invalid.")
		}
	}
	if s, ok := c["scope"].(string); ok {
		v.id.scopes = strings.Fields(s)
	}
	switch a := c["aud"].(type) {
	case string:
		v.id.audience = []string{a}
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok {
				v.id.audience = append(v.id.audience, s)
			}
		}
	}
	h.jwts.Put(sum, v, v.expiresAt, h.cfg.Now())
	return v, nil
}

// numericDate reads an RFC 7519 NumericDate; fosite decodes claims with
// json.Number.
func numericDate(v any) (time.Time, bool) {
	var sec int64
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil {
				return time.Time{}, false
			}
			i = int64(f)
		}
		sec = i
	case float64:
		sec = int64(n)
	case int64:
		sec = n
	default:
		return time.Time{}, false
	}
	if sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// apiKeyEntry is a verified API key, remembered for a short TTL (and
// forgotten as soon as apikeys.NotifyChannel names the key: revocation,
// rotation, expiry on any replica).
type apiKeyEntry struct {
	id    identity
	keyID string
}

// verifyAPIKey verifies an API key through the cache.
func (h *Handler) verifyAPIKey(ctx context.Context, token string) (*identity, error) {
	now := h.cfg.Now()
	sum := sha256.Sum256([]byte(token))
	if e, ok := h.keys.Get(sum, now); ok {
		return &e.id, nil
	}
	// A cache miss costs an Argon2id comparison: the key's bucket is
	// charged before it, so one key id cannot be hammered at that cost.
	parsed, err := apikey.Parse(token)
	if err != nil {
		return nil, deny(reasonAPIKeyInvalid, 401, "invalid_token", "The API key is invalid.")
	}
	if !h.limiter.allow("apikey:" + parsed.ID) {
		return nil, deny(reasonRateLimited, 429, "", "Too many requests for this credential.")
	}
	p, key, err := h.cfg.APIKeys.Verify(ctx, token)
	switch {
	case errors.Is(err, apikeys.ErrRevoked):
		return nil, deny(reasonAPIKeyRevoked, 401, "invalid_token", "The API key was revoked.")
	case errors.Is(err, apikeys.ErrExpired):
		return nil, deny(reasonAPIKeyExpired, 401, "invalid_token", "The API key expired.")
	case errors.Is(err, apikeys.ErrMalformed), errors.Is(err, apikeys.ErrInvalid):
		return nil, deny(reasonAPIKeyInvalid, 401, "invalid_token", "The API key is invalid.")
	case err != nil:
		return nil, fmt.Errorf("forwardauth: verify API key: %w", err)
	}
	e := &apiKeyEntry{keyID: key.ID}
	until := now.Add(h.cfg.APIKeyCacheTTL)
	if !key.ExpiresAt.IsZero() && key.ExpiresAt.Before(until) {
		until = key.ExpiresAt
	}
	e.id = identity{tokenType: typeAPIKey, subject: p.Subject(), scopes: p.Scopes, limitKey: "apikey:" + key.ID}
	if p.OwnerType == apikeys.OwnerClient {
		e.id.clientID = p.OwnerID
	}
	h.keys.Put(sum, e, until, now)
	id := e.id
	id.charged = true
	return &id, nil
}
