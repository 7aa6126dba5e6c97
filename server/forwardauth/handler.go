package forwardauth

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/verified"
	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/storage"
)

// Headers names the identity headers of a 200 answer.
type Headers struct {
	Subject, ClientID, Scope, TokenType string
}

// Default identity header names.
const (
	DefaultSubjectHeader   = "X-Auth-Subject"
	DefaultClientIDHeader  = "X-Auth-Client-Id"
	DefaultScopeHeader     = "X-Auth-Scope"
	DefaultTokenTypeHeader = "X-Auth-Token-Type" // #nosec G101 -- a header name, not a credential
)

// Config is everything the handler needs.
type Config struct {
	// Issuer is the iss every accepted JWT carries.
	Issuer string
	JWT    JWTDecoder
	// KeyPublished reports whether a signing key id is still published
	// (not revoked); checked on every use of a cached verification.
	KeyPublished func(kid string) bool
	Revocations  *Revocations
	APIKeys      APIKeys
	// Notifier delivers API key changes (apikeys.NotifyChannel) that evict
	// the API key cache.
	Notifier storage.Notifier
	Rules    *Rules
	Metrics  *Metrics
	Logger   logrus.FieldLogger
	// Audit records sampled denials; optional.
	Audit func(ctx context.Context, e storage.AuditEvent)
	// AuditSampleRate is the fraction of denials recorded as audit
	// events (0..1). Every denial is counted in the metrics regardless.
	AuditSampleRate float64
	// Headers: empty fields take the Default*Header names.
	Headers Headers
	// Rate and Burst bound checks per client (JWTs) or per API key, per
	// replica; 0 takes the defaults (1000/s, burst 2000). Never per IP.
	Rate  float64
	Burst int
	// APIKeyCacheTTL bounds how long a verified API key is remembered
	// without a change notice; default 10 s.
	APIKeyCacheTTL time.Duration
	// CacheEntries bounds each verification cache; default 50 000.
	CacheEntries int
	// Realm is the RFC 6750 realm; default "bulwark".
	Realm string
	// DPoP, when set, accepts "Authorization: DPoP <JWT>" with a DPoP
	// proof for the original request (RFC 9449 §7) and refuses DPoP-bound
	// tokens presented as bearer tokens. Nil answers the DPoP scheme 401.
	DPoP *dpop.Verifier
	Now  func() time.Time
}

// Handler answers forward-auth subrequests.
type Handler struct {
	cfg     Config
	jwts    *verified.Cache[*verifiedJWT]
	keys    *verified.Cache[*apiKeyEntry]
	limiter *limiter
	// prefix, when set, is the route prefix of Envoy mode: the original
	// path follows it in the request path.
	prefix string
}

// New validates cfg and returns the handler.
func New(cfg Config) (*Handler, error) {
	var problems []error
	if cfg.Issuer == "" {
		problems = append(problems, errors.New("forwardauth: Issuer is required"))
	}
	if cfg.JWT == nil || cfg.KeyPublished == nil || cfg.Revocations == nil || cfg.APIKeys == nil || cfg.Notifier == nil || cfg.Rules == nil || cfg.Metrics == nil || cfg.Logger == nil {
		problems = append(problems, errors.New("forwardauth: JWT, KeyPublished, Revocations, APIKeys, Notifier, Rules, Metrics and Logger are required"))
	}
	if cfg.AuditSampleRate < 0 || cfg.AuditSampleRate > 1 {
		problems = append(problems, errors.New("forwardauth: AuditSampleRate must be between 0 and 1"))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	cfg.Headers.Subject = or(cfg.Headers.Subject, DefaultSubjectHeader)
	cfg.Headers.ClientID = or(cfg.Headers.ClientID, DefaultClientIDHeader)
	cfg.Headers.Scope = or(cfg.Headers.Scope, DefaultScopeHeader)
	cfg.Headers.TokenType = or(cfg.Headers.TokenType, DefaultTokenTypeHeader)
	if cfg.Rate <= 0 {
		cfg.Rate = 1000
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 2000
	}
	if cfg.APIKeyCacheTTL <= 0 {
		cfg.APIKeyCacheTTL = 10 * time.Second
	}
	if cfg.CacheEntries <= 0 {
		cfg.CacheEntries = 50_000
	}
	if cfg.Realm == "" {
		cfg.Realm = "bulwark"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Audit == nil {
		cfg.Audit = func(context.Context, storage.AuditEvent) {}
	}
	cfg.Metrics.Attach(cfg.Revocations, cfg.Rules)
	return &Handler{
		cfg:     cfg,
		jwts:    verified.New[*verifiedJWT](cfg.CacheEntries),
		keys:    verified.New[*apiKeyEntry](cfg.CacheEntries),
		limiter: newLimiter(cfg.Rate, cfg.Burst, cfg.CacheEntries, cfg.Now),
	}, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Run keeps the caches current until ctx ends: API key change notices
// evict the API key cache (a lost subscription empties it), and idle rate
// limit buckets are dropped. The deny list has its own Run.
func (h *Handler) Run(ctx context.Context) {
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for ctx.Err() == nil {
		ch, err := h.cfg.Notifier.Subscribe(ctx, apikeys.NotifyChannel)
		if err != nil {
			h.keys.Clear()
			h.cfg.Logger.WithError(err).Warn("forward-auth: subscribing to API key changes failed")
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		h.keys.Clear()
	loop:
		for {
			select {
			case <-ctx.Done():
				return
			case <-sweep.C:
				h.limiter.sweep()
			case id, ok := <-ch:
				if !ok {
					h.keys.Clear()
					break loop
				}
				h.keys.DeleteFunc(func(e *apiKeyEntry) bool { return e.keyID == id })
			}
		}
	}
}

// origin is the original request the gateway asks about, established once.
// path is normalized for the rules; url is the original URL as the client
// addressed it (scheme, host, path without query), the htu a DPoP proof
// must name.
type origin struct {
	method, host, path, url string
}

// ServeHTTP answers one subrequest.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o, d := h.origin(r)
	if d != nil {
		h.refuse(w, r, o, nil, d)
		return
	}
	rule, ok := h.cfg.Rules.Current().Match(o.method, o.host, o.path)
	if !ok {
		h.refuse(w, r, o, nil, deny(reasonNoRule, http.StatusForbidden, "", "No rule allows this request."))
		return
	}
	if rule.Anonymous {
		// The identity headers are sent empty, so a gateway that copies
		// them overwrites whatever the caller sent under those names.
		h.allow(w, &identity{}, "anonymous")
		return
	}
	id, err := h.authenticate(r, o)
	if err != nil {
		var dn *denial
		if !errors.As(err, &dn) {
			h.cfg.Logger.WithError(err).Error("forward-auth: check failed")
			dn = deny(reasonUnavailable, http.StatusServiceUnavailable, "", "Temporarily unavailable.")
		}
		h.refuse(w, r, o, id, dn)
		return
	}
	if !id.charged && !h.limiter.allow(id.limitKey) {
		h.refuse(w, r, o, id, deny(reasonRateLimited, http.StatusTooManyRequests, "", "Too many requests for this credential."))
		return
	}
	if len(rule.Audiences) > 0 && !slices.ContainsFunc(id.audience, func(a string) bool { return slices.Contains(rule.Audiences, a) }) {
		h.refuse(w, r, o, id, deny(reasonWrongAudience, http.StatusUnauthorized, "invalid_token", "The access token is not meant for this audience."))
		return
	}
	for _, s := range rule.Scopes {
		if !slices.Contains(id.scopes, s) {
			dn := deny(reasonInsufficientScope, http.StatusForbidden, "insufficient_scope", "The request requires scope "+s+".")
			dn.scope = strings.Join(rule.Scopes, " ")
			h.refuse(w, r, o, id, dn)
			return
		}
	}
	h.allow(w, id, id.tokenType)
}

// allow answers 200 with every identity header set (empty when unknown).
func (h *Handler) allow(w http.ResponseWriter, id *identity, label string) {
	hd := w.Header()
	hd.Set(h.cfg.Headers.Subject, id.subject)
	hd.Set(h.cfg.Headers.ClientID, id.clientID)
	hd.Set(h.cfg.Headers.Scope, strings.Join(id.scopes, " "))
	hd.Set(h.cfg.Headers.TokenType, id.tokenType)
	hd.Set("Cache-Control", "no-store")
	h.cfg.Metrics.allowed.WithLabelValues(label).Inc()
	w.WriteHeader(http.StatusOK)
}

// origin reads the original request's method, host and normalized path:
// X-Forwarded-Method/-Host/-Uri (Traefik, Caddy, nginx with the headers
// set), X-Original-URI (nginx's usual name), or in Envoy mode the request
// itself. Each may appear once.
func (h *Handler) origin(r *http.Request) (origin, *denial) {
	var o origin
	one := func(name string) (string, bool) {
		v := r.Header.Values(name)
		if len(v) > 1 {
			return "", false
		}
		if len(v) == 0 {
			return "", true
		}
		return v[0], true
	}
	bad := deny(reasonMalformed, http.StatusBadRequest, "invalid_request", "Forwarded request headers are missing, duplicated or malformed.")
	method, ok1 := one("X-Forwarded-Method")
	host, ok2 := one("X-Forwarded-Host")
	uri, ok3 := one("X-Forwarded-Uri")
	orig, ok4 := one("X-Original-URI")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return o, bad
	}
	if h.prefix != "" {
		// Envoy ext_authz (HTTP): the original path follows the prefix and
		// the method and host are the request's own.
		uri = strings.TrimPrefix(r.URL.RawPath, h.prefix)
		if r.URL.RawPath == "" {
			uri = strings.TrimPrefix(r.URL.Path, h.prefix)
		}
		if r.URL.RawQuery != "" {
			uri += "?" + r.URL.RawQuery
		}
		method = r.Method
		if host == "" {
			host = r.Host
		}
	}
	if uri == "" {
		uri = orig
	} else if orig != "" && orig != uri {
		return o, bad
	}
	if method == "" {
		method = http.MethodGet
	}
	if uri == "" || !isToken(method) || len(host) > 255 || strings.ContainsAny(host, "/\\@ ") {
		return o, bad
	}

	p, err := NormalizePath(uri)
	if err != nil {
		o.method, o.host = method, host
		return o, deny(reasonPathRefused, http.StatusForbidden, "", "The request path is not acceptable.")
	}
	return origin{method: method, host: host, path: p, url: originURL(r, host, uri)}, nil
}

// originURL is the URL the client addressed (a DPoP proof's htu): the
// scheme from X-Forwarded-Proto (https when absent; ws and wss are the
// WebSocket names Traefik uses), the forwarded host and the path without
// query. It is empty, so that every proof fails its htu check, when the
// scheme is unclear (repeated, a list, unknown): bearer checks do not
// depend on it and go on working.
func originURL(r *http.Request, host, uri string) string {
	scheme := "https"
	switch v := r.Header.Values("X-Forwarded-Proto"); {
	case len(v) > 1:
		return ""
	case len(v) == 1:
		switch strings.ToLower(strings.TrimSpace(v[0])) {
		case "https", "wss":
		case "http", "ws":
			scheme = "http"
		default:
			return ""
		}
	}
	path, _, _ := strings.Cut(uri, "?")
	return scheme + "://" + host + path
}

func isToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// authenticate reads and verifies the credential (RFC 6750 §2.1 bearer
// header, RFC 9449 §7.1 DPoP header with its proof, or X-API-Key). On
// denial the identity may still be returned for the audit record.
func (h *Handler) authenticate(r *http.Request, o origin) (*identity, error) {
	authz := r.Header.Values("Authorization")
	apiKey := r.Header.Values("X-API-Key")
	if len(authz) > 1 || len(apiKey) > 1 || len(authz) == 1 && len(apiKey) == 1 {
		return nil, deny(reasonMalformed, http.StatusBadRequest, "invalid_request", "Present exactly one credential.")
	}
	if len(apiKey) == 1 {
		if !strings.HasPrefix(apiKey[0], "bwk_") {
			return nil, deny(reasonAPIKeyInvalid, http.StatusUnauthorized, "invalid_token", "The API key is invalid.")
		}
		return h.verifyAPIKey(r.Context(), apiKey[0])
	}
	if len(authz) == 0 {
		return nil, deny(reasonNoCredentials, http.StatusUnauthorized, "", "")
	}
	scheme, token, _ := strings.Cut(authz[0], " ")
	token = strings.TrimSpace(token)
	switch {
	case strings.EqualFold(scheme, "DPoP") && h.cfg.DPoP == nil:
		return nil, deny(reasonDPoP, http.StatusUnauthorized, "invalid_token", "DPoP is not enabled.")
	case strings.EqualFold(scheme, "DPoP"):
		return h.authenticateDPoP(r, o, token)
	case !strings.EqualFold(scheme, "Bearer"):
		return nil, deny(reasonNoCredentials, http.StatusUnauthorized, "invalid_request", "Use the Bearer scheme.")
	case token == "" || len(token) > 8<<10:
		return nil, deny(reasonMalformed, http.StatusUnauthorized, "invalid_request", "The bearer token is missing or too long.")
	case strings.HasPrefix(token, "bwk_"):
		return h.verifyAPIKey(r.Context(), token)
	}
	v, err := h.checkJWT(r.Context(), token)
	if err != nil || v.jkt == "" {
		return idOf(v), err
	}
	// A DPoP-bound token is worthless without its key (RFC 9449 §7.2).
	return &v.id, denyDPoP(reasonDPoPBinding, http.StatusUnauthorized, "invalid_token", "The access token is DPoP-bound: present it with the DPoP scheme and a proof.")
}

// authenticateDPoP verifies "Authorization: DPoP <JWT>": the token as a
// bearer token would be, then the proof for the original request (htm and
// htu from the forwarded headers, ath of the token, jti once across every
// replica), then that the proof's key is the one the token is bound to.
func (h *Handler) authenticateDPoP(r *http.Request, o origin, token string) (*identity, error) {
	if token == "" || len(token) > 8<<10 || strings.HasPrefix(token, "bwk_") {
		return nil, denyDPoP(reasonMalformed, http.StatusBadRequest, "invalid_request", "The DPoP scheme takes a JWT access token.")
	}
	v, err := h.checkJWT(r.Context(), token)
	if err != nil {
		var dn *denial
		if errors.As(err, &dn) {
			dn.dpop = true
		}
		return idOf(v), err
	}
	if v.jkt == "" {
		return &v.id, denyDPoP(reasonDPoPBinding, http.StatusUnauthorized, "invalid_token", "The access token is not DPoP-bound: present it with the Bearer scheme.")
	}
	proof, err := h.cfg.DPoP.Verify(r.Context(), r.Header.Values("DPoP"), dpop.Check{Method: o.method, URL: o.url, AccessToken: token})
	if e, refused := dpop.AsError(err); refused {
		switch {
		case e.Malformed:
			return &v.id, denyDPoP(reasonMalformed, http.StatusBadRequest, "invalid_request", e.Description())
		case e.Code == dpop.CodeUseNonce:
			return &v.id, denyDPoP(reasonDPoPNonce, http.StatusUnauthorized, e.Code, e.Description())
		}
		return &v.id, denyDPoP(reasonDPoPInvalid, http.StatusUnauthorized, e.Code, e.Description())
	}
	if err != nil {
		return &v.id, err
	}
	if proof.JKT != v.jkt {
		return &v.id, denyDPoP(reasonDPoPBinding, http.StatusUnauthorized, dpop.CodeInvalidProof, "The DPoP proof's key is not the key the access token is bound to.")
	}
	return &v.id, nil
}

func idOf(v *verifiedJWT) *identity {
	if v == nil {
		return nil
	}
	return &v.id
}

// checkJWT verifies a JWT access token (cached), its expiry and revocation.
// On a denial after the signature check the verified token is returned too.
func (h *Handler) checkJWT(ctx context.Context, token string) (*verifiedJWT, error) {
	v, err := h.verifyJWT(ctx, token)
	if err != nil {
		return nil, err
	}
	if !h.cfg.Now().Before(v.expiresAt) {
		return v, deny(reasonExpired, http.StatusUnauthorized, "invalid_token", "The access token expired.")
	}
	switch err := h.cfg.Revocations.Check(ctx, v.key, v.signature, v.issuedAt, v.expiresAt); {
	case errors.Is(err, errRevoked):
		return v, deny(reasonRevoked, http.StatusUnauthorized, "invalid_token", "The access token was revoked.")
	case err != nil:
		return v, err
	}
	return v, nil
}

// refuse writes a denial: the RFC 6750 §3 challenge on 401 and 403, a
// small JSON body, the metric, and (sampled) an audit event.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, o origin, id *identity, d *denial) {
	h.cfg.Metrics.denied.WithLabelValues(d.reason).Inc()
	if h.cfg.AuditSampleRate > 0 && rand.Float64() < h.cfg.AuditSampleRate { // #nosec G404 -- sampling audit volume, not a secret
		h.cfg.Metrics.auditsSampled.Inc()
		e := storage.AuditEvent{
			Event: "forward_auth.denied", Outcome: "denied",
			Details: map[string]string{"reason": d.reason, "method": o.method, "host": o.host, "path": o.path},
		}
		if id != nil {
			e.Subject, e.ClientID = id.subject, id.clientID
		}
		h.cfg.Audit(r.Context(), e)
	}
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	if d.status == http.StatusTooManyRequests || d.status == http.StatusServiceUnavailable {
		hd.Set("Retry-After", "1")
	}
	if d.dpop {
		c := dpop.Challenge(h.cfg.Realm, d.code, d.desc)
		if d.scope != "" {
			c += `, scope="` + d.scope + `"`
		}
		hd.Set("WWW-Authenticate", c)
		if d.code == dpop.CodeUseNonce {
			hd.Set("DPoP-Nonce", h.cfg.DPoP.Nonce())
		}
	} else if d.status == http.StatusUnauthorized || d.status == http.StatusForbidden && d.code != "" || d.status == http.StatusBadRequest {
		c := `Bearer realm="` + h.cfg.Realm + `"`
		if d.code != "" {
			c += `, error="` + d.code + `"`
			if d.desc != "" {
				c += `, error_description="` + d.desc + `"`
			}
		}
		if d.scope != "" {
			c += `, scope="` + d.scope + `"`
		}
		hd.Set("WWW-Authenticate", c)
		if d.status == http.StatusUnauthorized && d.code == "" && h.cfg.DPoP != nil {
			// No credential: both schemes are offered (RFC 9449 §7.1).
			hd.Add("WWW-Authenticate", dpop.Challenge(h.cfg.Realm, "", ""))
		}
	}
	hd.Set("Content-Type", "application/json")
	w.WriteHeader(d.status)
	code := d.code
	if code == "" {
		code = d.reason
	}
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": d.desc})
	_, _ = w.Write(body)
}
