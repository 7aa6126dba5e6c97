package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/ory/fosite"
)

// HashKey turns a token signature, authorization code or request URI into the
// key it is stored under. No raw token, code or secret sits in a table, so a
// leaked table cannot be replayed against the token endpoint.
func HashKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// secretFormFields are request parameters never persisted with a session.
// fosite reads code_challenge, nonce, prompt, max_age and friends back from
// the stored form, so the form is kept minus these.
var secretFormFields = []string{
	"client_secret", "client_assertion", "code", "code_verifier", "refresh_token",
	"password", "token", "subject_token", "actor_token", "assertion", "request",
}

// TokenRecord is a fosite request in the form every backend stores it: the
// columns a query needs plus an opaque JSON document for the rest.
type TokenRecord struct {
	// Key is HashKey(signature or code).
	Key         string
	RequestID   string
	ClientID    string
	Subject     string
	RequestedAt time.Time
	// ExpiresAt is when the row may be deleted by the janitor.
	ExpiresAt time.Time
	Active    bool
	// Data is the JSON encoding of storedRequest.
	Data []byte
}

type storedRequest struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requestedAt"`
	ClientID          string     `json:"clientId"`
	RequestedScope    []string   `json:"requestedScope"`
	GrantedScope      []string   `json:"grantedScope"`
	RequestedAudience []string   `json:"requestedAudience"`
	GrantedAudience   []string   `json:"grantedAudience"`
	Form              url.Values `json:"form"`
	// Session is the session's own JSON. EncodeRequest leaves it nil and
	// appends it to the encoded object itself (see appendSession).
	Session json.RawMessage `json:"session,omitempty"`
	// Authorize request fields, set for PAR sessions only.
	Authorize *storedAuthorize `json:"authorize,omitempty"`
}

type storedAuthorize struct {
	ResponseTypes        []string `json:"responseTypes"`
	RedirectURI          string   `json:"redirectUri"`
	State                string   `json:"state"`
	HandledResponseTypes []string `json:"handledResponseTypes"`
	ResponseMode         string   `json:"responseMode"`
	DefaultResponseMode  string   `json:"defaultResponseMode"`
}

// marshal and unmarshal are goccy/go-json's drop-in encoder and decoder:
// every token lookup decodes a stored request, and encoding/json's
// reflection made that ~30 µs and 84 allocations per lookup, 3× what
// go-json takes (BenchmarkDecodeRequest). TestCodecMatchesEncodingJSON
// holds both to encoding/json's results on every stored shape.
var (
	marshal   = gojson.Marshal
	unmarshal = gojson.Unmarshal
)

// EncodeRequest turns a fosite requester into a TokenRecord keyed by
// HashKey(key). tokenType selects which expiry of the session bounds the
// row's lifetime; fallback is used when the session carries none.
func EncodeRequest(key string, r fosite.Requester, tokenType fosite.TokenType, fallback time.Duration) (*TokenRecord, error) {
	form := url.Values{}
	for k, v := range r.GetRequestForm() {
		form[k] = append([]string(nil), v...)
	}
	for _, k := range secretFormFields {
		form.Del(k)
	}
	sess := r.GetSession()
	raw, err := marshal(sess)
	if err != nil {
		return nil, fmt.Errorf("storage: encode session: %w", err)
	}
	sr := storedRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              form,
	}
	if c := r.GetClient(); c != nil {
		sr.ClientID = c.GetID()
	}
	if ar, ok := r.(fosite.AuthorizeRequester); ok {
		a := &storedAuthorize{
			ResponseTypes:        ar.GetResponseTypes(),
			State:                ar.GetState(),
			HandledResponseTypes: handled(ar),
			ResponseMode:         string(ar.GetResponseMode()),
			DefaultResponseMode:  string(ar.GetDefaultResponseMode()),
		}
		if u := ar.GetRedirectURI(); u != nil {
			a.RedirectURI = u.String()
		}
		sr.Authorize = a
	}
	data, err := marshal(sr)
	if err != nil {
		return nil, fmt.Errorf("storage: encode request: %w", err)
	}
	data = appendSession(data, raw)
	rec := &TokenRecord{
		Key:         HashKey(key),
		RequestID:   sr.ID,
		ClientID:    sr.ClientID,
		RequestedAt: sr.RequestedAt,
		Active:      true,
		Data:        data,
	}
	if sess != nil {
		rec.Subject = sess.GetSubject()
		rec.ExpiresAt = sess.GetExpiresAt(tokenType)
	}
	if rec.ExpiresAt.IsZero() {
		base := sr.RequestedAt
		if base.IsZero() {
			base = time.Now()
		}
		rec.ExpiresAt = base.Add(fallback)
	}
	return rec, nil
}

// appendSession adds "session": raw to the encoded object obj. raw is
// json.Marshal's own output, so it is valid and compact already: embedding
// it as a json.RawMessage field would make encoding/json scan and copy the
// whole session a second time (a measurable share of every token's CPU).
func appendSession(obj, raw []byte) []byte {
	out := make([]byte, 0, len(obj)+len(`,"session":`)+len(raw))
	out = append(out, obj[:len(obj)-1]...) // drop the closing brace
	if len(obj) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"session":`...)
	out = append(out, raw...)
	return append(out, '}')
}

func handled(ar fosite.AuthorizeRequester) []string {
	var out []string
	for _, rt := range ar.GetResponseTypes() {
		if ar.DidHandleAllResponseTypes() || isHandled(ar, rt) {
			out = append(out, rt)
		}
	}
	return out
}

func isHandled(ar fosite.AuthorizeRequester, rt string) bool {
	if a, ok := ar.(*fosite.AuthorizeRequest); ok {
		return a.HandledResponseTypes.Has(rt)
	}
	return false
}

// DecodeRequest rebuilds the requester stored in rec. The session is decoded
// into session when it is non-nil (fosite passes the session it wants
// filled); revocation passes nil, and then a fresh *Session is used. The
// result is a *fosite.AuthorizeRequest when the record came from one (PAR),
// a *fosite.Request otherwise.
func DecodeRequest(rec *TokenRecord, client fosite.Client, session fosite.Session) (fosite.Requester, error) {
	var sr storedRequest
	if err := unmarshal(rec.Data, &sr); err != nil {
		return nil, fmt.Errorf("storage: decode request: %w", err)
	}
	if session == nil {
		session = NewSession("")
	}
	if len(sr.Session) > 0 && string(sr.Session) != "null" {
		if err := unmarshal(sr.Session, session); err != nil {
			return nil, fmt.Errorf("storage: decode session: %w", err)
		}
	}
	req := fosite.Request{
		ID:                sr.ID,
		RequestedAt:       sr.RequestedAt,
		Client:            client,
		RequestedScope:    fosite.Arguments(sr.RequestedScope),
		GrantedScope:      fosite.Arguments(sr.GrantedScope),
		RequestedAudience: fosite.Arguments(sr.RequestedAudience),
		GrantedAudience:   fosite.Arguments(sr.GrantedAudience),
		Form:              sr.Form,
		Session:           session,
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	if sr.Authorize == nil {
		return &req, nil
	}
	ar := &fosite.AuthorizeRequest{
		ResponseTypes:        fosite.Arguments(sr.Authorize.ResponseTypes),
		State:                sr.Authorize.State,
		HandledResponseTypes: fosite.Arguments(sr.Authorize.HandledResponseTypes),
		ResponseMode:         fosite.ResponseModeType(sr.Authorize.ResponseMode),
		DefaultResponseMode:  fosite.ResponseModeType(sr.Authorize.DefaultResponseMode),
		Request:              req,
	}
	if sr.Authorize.RedirectURI != "" {
		u, err := url.Parse(sr.Authorize.RedirectURI)
		if err != nil {
			return nil, fmt.Errorf("storage: decode redirect uri: %w", err)
		}
		ar.RedirectURI = u
	}
	return ar, nil
}
