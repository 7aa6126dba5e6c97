package apikeyauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// Response headers telling a holder about a pending rotation.
const (
	HeaderKeyStatus  = "Bulwark-Api-Key-Status"
	HeaderKeyExpires = "Bulwark-Api-Key-Expires"
)

// DefaultRealm is the realm of the WWW-Authenticate challenge.
const DefaultRealm = "bulwark"

// Verifier authenticates an API key token (apikeys.Service).
type Verifier interface {
	Verify(ctx context.Context, token string) (*apikeys.Principal, *storage.APIKey, error)
}

// Option configures Middleware and SelfRotate.
type Option func(*options)

type options struct {
	log   logrus.FieldLogger
	realm string
	audit func(ctx context.Context, e storage.AuditEvent)
}

// EventAuthFailed is the audit event of a refused API-key authentication.
const EventAuthFailed = "apikey.auth_failed"

// WithAudit records every refused authentication (audit.Sink.Record): the
// actor is unknown, the event names the reason and the sink adds the
// source address. The presented token is never part of it.
func WithAudit(record func(ctx context.Context, e storage.AuditEvent)) Option {
	return func(o *options) { o.audit = record }
}

// WithLogger sets where server-side failures are logged.
func WithLogger(l logrus.FieldLogger) Option { return func(o *options) { o.log = l } }

// WithRealm sets the realm of WWW-Authenticate challenges.
func WithRealm(realm string) Option { return func(o *options) { o.realm = realm } }

func newOptions(opts []Option) options {
	o := options{realm: DefaultRealm}
	for _, f := range opts {
		f(&o)
	}
	if o.audit == nil {
		o.audit = func(context.Context, storage.AuditEvent) {}
	}
	if o.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.log = l
	}
	return o
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p, as Middleware stores it.
func WithPrincipal(ctx context.Context, p *apikeys.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the authenticated API key of the request, if any.
func PrincipalFrom(ctx context.Context) (*apikeys.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*apikeys.Principal)
	return p, ok && p != nil
}

// BearerToken returns the token of an "Authorization: Bearer" header (RFC
// 6750 §2.1; the scheme is case-insensitive, RFC 7235 §2.1). Tokens in the
// query string or body are never accepted: they end up in logs.
func BearerToken(r *http.Request) (string, bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// Middleware authenticates every request with an API key and stores the
// Principal in the request context (PrincipalFrom). Failures are answered
// here with 401 (or 503 when the database is unreachable) and never reach
// the next handler.
func Middleware(svc Verifier, opts ...Option) mux.MiddlewareFunc {
	o := newOptions(opts)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, ok := BearerToken(r)
			if !ok {
				o.failed(r, "missing")
				o.challenge(w, "", "missing bearer api key")
				return
			}
			p, k, err := svc.Verify(r.Context(), tok)
			if err != nil {
				o.verifyError(w, r, err)
				return
			}
			pendingRotation(w, k)
			reqinfo.From(r.Context()).SetSubject(p.Subject())
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}

// pendingRotation tells the holder of a rotating key that it should collect
// its successor, and until when the old key works.
func pendingRotation(w http.ResponseWriter, k *storage.APIKey) {
	if k == nil || k.Status != storage.APIKeyRotating {
		return
	}
	w.Header().Set(HeaderKeyStatus, string(k.Status))
	if !k.ExpiresAt.IsZero() {
		w.Header().Set(HeaderKeyExpires, k.ExpiresAt.UTC().Format(time.RFC3339))
	}
}

// RequireScope refuses, with 403 insufficient_scope (RFC 6750 §3.1), a
// request whose API key lacks scope. It must run after Middleware; without
// an authenticated key it answers 401.
func RequireScope(scope string) mux.MiddlewareFunc {
	o := newOptions(nil)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := PrincipalFrom(r.Context())
			if !ok {
				o.challenge(w, "invalid_token", "authentication required")
				return
			}
			if !p.Has(scope) {
				w.Header().Set("WWW-Authenticate", `Bearer realm=`+strconv.Quote(o.realm)+
					`, error="insufficient_scope", scope=`+strconv.Quote(scope))
				writeJSON(w, http.StatusForbidden, map[string]string{
					"error":             "insufficient_scope",
					"error_description": "the api key does not carry the required scope",
					"scope":             scope,
				})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// challenge answers 401 with a Bearer challenge. An empty code (no
// credentials at all) leaves the error out of the header, as RFC 6750 §3.1
// asks, while the body still says invalid_token.
func (o options) challenge(w http.ResponseWriter, code, desc string) {
	h := `Bearer realm=` + strconv.Quote(o.realm)
	if code != "" {
		h += `, error=` + strconv.Quote(code) + `, error_description=` + strconv.Quote(desc)
	}
	w.Header().Set("WWW-Authenticate", h)
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": desc})
}

// failed records a refused authentication. reason is one of a fixed set
// of words; nothing the caller sent is recorded but what the sink takes
// from the request facts (source address, user agent).
func (o options) failed(r *http.Request, reason string) {
	o.audit(r.Context(), storage.AuditEvent{
		Event: EventAuthFailed, Actor: "unknown", Outcome: "failure",
		Details: map[string]string{"reason": reason},
	})
}

// verifyError maps a Verify or CollectOrRotate error to the response. The
// descriptions are fixed strings: nothing from the token is echoed.
func (o options) verifyError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, apikeys.ErrMalformed):
		o.failed(r, "malformed")
		o.challenge(w, "invalid_token", "malformed api key")
	case errors.Is(err, apikeys.ErrInvalid):
		o.failed(r, "invalid")
		o.challenge(w, "invalid_token", "invalid api key")
	case errors.Is(err, apikeys.ErrRevoked):
		o.failed(r, "revoked")
		o.challenge(w, "invalid_token", "api key revoked")
	case errors.Is(err, apikeys.ErrExpired):
		o.failed(r, "expired")
		o.challenge(w, "invalid_token", "api key expired")
	case errors.Is(err, storage.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"error": "temporarily_unavailable", "error_description": "try again later",
		})
	default:
		o.log.WithError(err).WithField("request_id", reqinfo.RequestID(r.Context())).Error("apikeyauth: api key verification failed")
		writeJSON(w, http.StatusInternalServerError, map[string]string{
			"error": "server_error", "error_description": "internal error",
		})
	}
}

// writeJSON writes v as the JSON body. Authentication answers are never
// cached by intermediaries.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
