package protect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/keys/apikey"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
)

// Errors returned by ParseParams; test them with errors.Is.
var (
	ErrDuplicateParam = errors.New("duplicate parameter")
	ErrTooManyParams  = errors.New("too many parameters")
	ErrParamTooLong   = errors.New("parameter too long")
	ErrMalformedQuery = errors.New("malformed parameters")
)

// ParamError names the offending parameter. Name is attacker-chosen text:
// it is safe to echo (JSON-encoded, truncated) but the value never is.
type ParamError struct {
	Err  error
	Name string
}

func (e *ParamError) Error() string {
	if e.Name == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Name
}

func (e *ParamError) Unwrap() error { return e.Err }

// ParamLimits bounds ParseParams.
type ParamLimits struct {
	// MaxParams is the most name=value pairs accepted.
	MaxParams int
	// MaxValueBytes bounds each decoded name and each decoded value.
	MaxValueBytes int
	// Repeatable names may appear more than once (RFC 8707 "resource",
	// fosite's "audience"); every other name must be unique.
	Repeatable map[string]bool
}

// ParseParams decodes application/x-www-form-urlencoded text exactly as
// url.ParseQuery does, but fails on the first duplicate name (RFC 6749
// §3.1: "Request and response parameters MUST NOT be included more than
// once"), on too many pairs and on over-long names or values. seen, when
// non-nil, carries names from an earlier part of the request (the query
// string when parsing the body), so a name in both counts as a duplicate.
func ParseParams(raw string, lim ParamLimits, seen url.Values) (url.Values, error) {
	vals := make(url.Values)
	n := 0
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if strings.Contains(pair, ";") {
			return nil, &ParamError{Err: ErrMalformedQuery}
		}
		if pair == "" {
			continue
		}
		n++
		if lim.MaxParams > 0 && n > lim.MaxParams {
			return nil, &ParamError{Err: ErrTooManyParams}
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, &ParamError{Err: ErrMalformedQuery}
		}
		if lim.MaxValueBytes > 0 && len(name) > lim.MaxValueBytes {
			return nil, &ParamError{Err: ErrParamTooLong}
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, &ParamError{Err: ErrMalformedQuery, Name: name}
		}
		if lim.MaxValueBytes > 0 && len(value) > lim.MaxValueBytes {
			return nil, &ParamError{Err: ErrParamTooLong, Name: name}
		}
		if !cleanText(name) || !cleanText(value) {
			return nil, &ParamError{Err: errBadBytes}
		}
		if !lim.Repeatable[name] {
			if _, dup := vals[name]; dup {
				return nil, &ParamError{Err: ErrDuplicateParam, Name: name}
			}
			if _, dup := seen[name]; dup {
				return nil, &ParamError{Err: ErrDuplicateParam, Name: name}
			}
		}
		vals[name] = append(vals[name], value)
	}
	return vals, nil
}

// InputConfig configures StrictInput. Zero fields take the defaults in
// brackets.
type InputConfig struct {
	// MaxBodyBytes caps the request body [64 KiB]. Larger bodies get 413.
	MaxBodyBytes int64
	// MaxValueBytes caps each parameter name and value [2 KiB].
	MaxValueBytes int
	// MaxParams caps the parameters in the query and in the body, each
	// [100].
	MaxParams int
	// Repeatable names may appear more than once [resource, audience].
	Repeatable []string
	// ContentTypes lists the media types accepted for request bodies
	// [application/x-www-form-urlencoded]; anything else gets 400.
	// Form bodies are checked like the query; other types only for size.
	// The admin JSON API passes []string{"application/json"}.
	ContentTypes []string
	// Response is the route's response kind: refusals are OAuth JSON for
	// API routes and an HTML page for Page routes [API].
	Response Kind
	// Claimant, when set, names the claimed identity of a request whose
	// credential is not a client's (dynamic registration's bearer tokens),
	// when none of the usual sources (Basic, client_id, assertion, API
	// key) names one. Limits and blocks then key on it.
	Claimant func(r *http.Request) string
}

// errBadBytes is the cause of a refusal for a NUL byte or invalid UTF-8.
var errBadBytes = errors.New("bad bytes")

// StrictInput returns middleware that enforces cfg before the handler
// runs, and is where the request's body is read the one time the pipeline
// reads it:
//
//   - NUL bytes and invalid UTF-8 in the path, the query, any header value,
//     the HTTP Basic credentials or the body are refused with 400 before
//     anything can store them (Postgres refuses both, which used to surface
//     as a 500);
//   - the body is size-limited and form parameters are checked (duplicates,
//     count, length);
//   - the claimed client id (HTTP Basic user, client_id, or the sub/iss of a
//     client_assertion) is recorded in reqinfo for every later layer;
//   - the body is put back, so the handler (fosite's ParseForm, a JSON
//     decoder) reads it as usual.
//
// Refusals name a parameter or header but never echo a value.
func StrictInput(cfg InputConfig) mux.MiddlewareFunc {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.MaxValueBytes <= 0 {
		cfg.MaxValueBytes = 2 << 10
	}
	if cfg.MaxParams <= 0 {
		cfg.MaxParams = 100
	}
	if cfg.Repeatable == nil {
		cfg.Repeatable = []string{"resource", "audience"}
	}
	if len(cfg.ContentTypes) == 0 {
		cfg.ContentTypes = []string{formType}
	}
	lim := ParamLimits{MaxParams: cfg.MaxParams, MaxValueBytes: cfg.MaxValueBytes, Repeatable: map[string]bool{}}
	for _, n := range cfg.Repeatable {
		lim.Repeatable[n] = true
	}
	kind := cfg.Response
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !cleanText(r.URL.Path) {
				refuse(w, kind, http.StatusBadRequest, "invalid_request", "The request path contains a NUL byte or invalid UTF-8.")
				return
			}
			if name, ok := cleanHeaders(r.Header); !ok {
				refuse(w, kind, http.StatusBadRequest, "invalid_request", "The "+name+" header contains a NUL byte or invalid UTF-8.")
				return
			}
			basicUser, basicPass, basic := r.BasicAuth()
			if basic {
				if u, err := url.QueryUnescape(basicUser); err == nil {
					basicUser = u
				}
				if p, err := url.QueryUnescape(basicPass); err == nil {
					basicPass = p
				}
				if !cleanText(basicUser) || !cleanText(basicPass) {
					refuse(w, kind, http.StatusBadRequest, "invalid_request", "The HTTP Basic credentials contain a NUL byte or invalid UTF-8.")
					return
				}
			}
			query, err := ParseParams(r.URL.RawQuery, lim, nil)
			if err != nil {
				writeParamError(w, kind, err)
				return
			}
			if r.ContentLength > cfg.MaxBodyBytes {
				refuse(w, kind, http.StatusRequestEntityTooLarge, "invalid_request", "Request body too large.")
				return
			}
			// Only a request that actually carries a body must declare an
			// accepted type; a bodiless POST (an admin action) passes and
			// its handler decides whether parameters were required.
			hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
			mediaType := ""
			if hasBody {
				mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
				if err != nil || !containsFold(cfg.ContentTypes, mt) {
					refuse(w, kind, http.StatusBadRequest, "invalid_request", "Unsupported content type.")
					return
				}
				mediaType = strings.ToLower(mt)
			}
			var form url.Values
			if hasBody {
				body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cfg.MaxBodyBytes))
				if err != nil {
					var tooBig *http.MaxBytesError
					if errors.As(err, &tooBig) {
						refuse(w, kind, http.StatusRequestEntityTooLarge, "invalid_request", "Request body too large.")
						return
					}
					refuse(w, kind, http.StatusBadRequest, "invalid_request", "Could not read request body.")
					return
				}
				_ = r.Body.Close()
				switch mediaType {
				case formType:
					if form, err = ParseParams(string(body), lim, query); err != nil {
						writeParamError(w, kind, err)
						return
					}
				default:
					// JSON: a NUL escaped as \u0000 decodes to a NUL byte.
					if !utf8.Valid(body) || bytes.IndexByte(body, 0) >= 0 || bytes.Contains(bytes.ToLower(body), []byte(`\u0000`)) {
						refuse(w, kind, http.StatusBadRequest, "invalid_request", "The request body contains a NUL byte or invalid UTF-8.")
						return
					}
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			claimed := ""
			switch {
			case basic:
				claimed = basicUser
			case form.Get("client_id") != "":
				claimed = form.Get("client_id")
			case form.Get("client_assertion") != "":
				claimed = assertionClientID(form.Get("client_assertion"))
			case query.Get("client_id") != "":
				claimed = query.Get("client_id")
			default:
				// An API key is limited like a client, under its public id.
				if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
					if k, err := apikey.Parse(strings.TrimSpace(tok)); err == nil {
						claimed = "apikey:" + k.ID
					}
				}
			}
			if claimed == "" && cfg.Claimant != nil {
				claimed = cfg.Claimant(r)
			}
			info := reqinfo.From(r.Context())
			info.SetClaimedClientID(claimed)
			if u := form.Get("username"); u != "" {
				info.SetClaimedAccount(normalizeAccount(u))
			}
			next.ServeHTTP(w, r)
		})
	}
}

// cleanText reports whether s is valid UTF-8 without NUL bytes.
func cleanText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// cleanHeaders checks every header value; it returns the first offending
// header's canonical name (attacker-chosen but a valid token, so safe to
// name).
func cleanHeaders(h http.Header) (string, bool) {
	for name, vals := range h {
		for _, v := range vals {
			if !cleanText(v) {
				if len(name) > maxEchoedName {
					name = name[:maxEchoedName]
				}
				return name, false
			}
		}
	}
	return "", true
}

// assertionClientID is the client a private_key_jwt assertion claims to be:
// its sub, which RFC 7523 §3 requires to be the client id, else its iss.
// The assertion is NOT verified here (fosite does that); the id only keys
// the client-secret guard, limits and blocks, like a Basic user name.
func assertionClientID(assertion string) string {
	tok, err := josejwt.ParseSigned(assertion)
	if err != nil {
		return ""
	}
	var c josejwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return ""
	}
	id := c.Subject
	if id == "" {
		id = c.Issuer
	}
	if !cleanText(id) {
		return ""
	}
	return id
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// maxEchoedName keeps an attacker-chosen name from bloating the error.
const maxEchoedName = 64

func writeParamError(w http.ResponseWriter, kind Kind, err error) {
	var pe *ParamError
	desc := "Malformed request parameters."
	if errors.As(err, &pe) {
		switch {
		case errors.Is(pe.Err, ErrDuplicateParam):
			name := pe.Name
			if len(name) > maxEchoedName {
				name = name[:maxEchoedName]
			}
			desc = fmt.Sprintf("duplicate parameter: %s", name)
		case errors.Is(pe.Err, ErrTooManyParams):
			desc = "Too many request parameters."
		case errors.Is(pe.Err, ErrParamTooLong):
			desc = "Request parameter too long."
		case errors.Is(pe.Err, errBadBytes):
			desc = "A request parameter contains a NUL byte or invalid UTF-8."
		}
	}
	refuse(w, kind, http.StatusBadRequest, "invalid_request", desc)
}
