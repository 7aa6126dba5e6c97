package storage

import (
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is the one fosite session type Bulwark uses for every grant. It
// carries the OpenID Connect ID token claims (openid.Session) and the RFC 9068
// access token claims and header (oauth2.JWTSessionContainer), and it is what
// the stores serialise next to each token signature.
type Session struct {
	*openid.DefaultSession `json:"idToken"`
	// AccessClaims are the JWT access token claims; fosite fills exp, iat,
	// scope and audience, the server fills iss, sub, jti and client_id.
	AccessClaims *jwt.JWTClaims `json:"accessClaims"`
	// AccessHeader carries typ=at+jwt and the signing kid.
	AccessHeader *jwt.Headers `json:"accessHeader"`
	// ClientID is the client the tokens were issued to.
	ClientID string `json:"clientId"`
	// APIKeyID is set when the token was obtained by exchanging an API key.
	APIKeyID string `json:"apiKeyId,omitempty"`
	// DPoPJKT is the RFC 7638 thumbprint of the DPoP key the tokens are
	// bound to (RFC 9449 §6: the access token's cnf.jkt); empty for
	// bearer tokens.
	DPoPJKT string `json:"dpopJkt,omitempty"`
}

var (
	_ oauth2.JWTSessionContainer = (*Session)(nil)
	_ openid.Session             = (*Session)(nil)
)

// NewSession returns an empty session with every nested pointer allocated,
// so fosite and json.Unmarshal can fill it in place.
func NewSession(subject string) *Session {
	return &Session{
		DefaultSession: &openid.DefaultSession{
			Claims:    &jwt.IDTokenClaims{Subject: subject, Extra: map[string]interface{}{}},
			Headers:   &jwt.Headers{Extra: map[string]interface{}{}},
			ExpiresAt: map[fosite.TokenType]time.Time{},
			Subject:   subject,
		},
		AccessClaims: &jwt.JWTClaims{Subject: subject, Extra: map[string]interface{}{}},
		AccessHeader: &jwt.Headers{Extra: map[string]interface{}{}},
	}
}

// GetJWTClaims implements oauth2.JWTSessionContainer. fosite sets exp, iat,
// scope and aud through With(); the session's expiry for access tokens is
// copied in so it matches the stored session.
func (s *Session) GetJWTClaims() jwt.JWTClaimsContainer {
	if s.AccessClaims == nil {
		s.AccessClaims = &jwt.JWTClaims{Extra: map[string]interface{}{}}
	}
	if s.AccessClaims.Extra == nil {
		s.AccessClaims.Extra = map[string]interface{}{}
	}
	// RFC 9068 §2.2: scope is a space-separated string.
	s.AccessClaims.ScopeField = jwt.JWTScopeFieldString
	return s.AccessClaims
}

// GetJWTHeader implements oauth2.JWTSessionContainer. RFC 9068 §2.1 requires
// typ "at+jwt".
func (s *Session) GetJWTHeader() *jwt.Headers {
	if s.AccessHeader == nil {
		s.AccessHeader = &jwt.Headers{}
	}
	if s.AccessHeader.Extra == nil {
		s.AccessHeader.Extra = map[string]interface{}{}
	}
	s.AccessHeader.Extra["typ"] = "at+jwt"
	return s.AccessHeader
}

// Clone implements fosite.Session with a deep copy.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	out := &Session{ClientID: s.ClientID, APIKeyID: s.APIKeyID, DPoPJKT: s.DPoPJKT}
	if s.DefaultSession != nil {
		out.DefaultSession, _ = s.DefaultSession.Clone().(*openid.DefaultSession)
	}
	if s.AccessClaims != nil {
		c := *s.AccessClaims
		c.Audience = append([]string(nil), s.AccessClaims.Audience...)
		c.Scope = append([]string(nil), s.AccessClaims.Scope...)
		c.Extra = copyMap(s.AccessClaims.Extra)
		out.AccessClaims = &c
	}
	if s.AccessHeader != nil {
		out.AccessHeader = &jwt.Headers{Extra: copyMap(s.AccessHeader.Extra)}
	}
	return out
}

func copyMap(m map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
