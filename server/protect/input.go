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

	"github.com/gorilla/mux"
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
}

// StrictInput returns middleware that enforces cfg before the handler
// runs: the body is read (up to MaxBodyBytes) and checked, then put back so
// the handler (fosite's ParseForm, a JSON decoder) reads it as usual.
// Refusals are OAuth JSON: 413 for a large body, 400 invalid_request for the
// rest, naming a duplicate parameter but never echoing a value.
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
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			query, err := ParseParams(r.URL.RawQuery, lim, nil)
			if err != nil {
				writeParamError(w, err)
				return
			}
			if r.ContentLength > cfg.MaxBodyBytes {
				writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "Request body too large.")
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
					writeError(w, http.StatusBadRequest, "invalid_request", "Unsupported content type.")
					return
				}
				mediaType = strings.ToLower(mt)
			}
			if hasBody {
				body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cfg.MaxBodyBytes))
				if err != nil {
					var tooBig *http.MaxBytesError
					if errors.As(err, &tooBig) {
						writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "Request body too large.")
						return
					}
					writeError(w, http.StatusBadRequest, "invalid_request", "Could not read request body.")
					return
				}
				_ = r.Body.Close()
				if mediaType == formType {
					if _, err := ParseParams(string(body), lim, query); err != nil {
						writeParamError(w, err)
						return
					}
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			next.ServeHTTP(w, r)
		})
	}
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

func writeParamError(w http.ResponseWriter, err error) {
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
		}
	}
	writeError(w, http.StatusBadRequest, "invalid_request", desc)
}
