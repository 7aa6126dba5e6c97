package protect

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
)

// CORSMode says whether a route answers cross-origin browser requests
// (the Fetch standard's CORS protocol). Every route states it in its
// Policy; the zero value answers none.
type CORSMode int

const (
	// CORSNone sends no Access-Control-* header, ever: browsers keep
	// other origins from reading the response (introspection, PAR, pages,
	// the whole admin listener).
	CORSNone CORSMode = iota
	// CORSAnyOrigin sends Access-Control-Allow-Origin: * on every
	// response: public documents read without credentials (discovery,
	// JWKS).
	CORSAnyOrigin
	// CORSClientOrigins answers the origins registered by the client the
	// request names (allowed_cors_origins, "+" for the origins of its
	// redirect URIs), echoing the exact origin with Vary: Origin and never
	// in credentials mode. Preflights name no client and follow the union
	// of every client's origins.
	CORSClientOrigins
)

// CORS is a route's cross-origin policy.
type CORS struct {
	Mode CORSMode
	// Headers are the request headers a cross-origin caller may send
	// (CORSClientOrigins), answered in Access-Control-Allow-Headers. The
	// allowed methods are the route's own, minus OPTIONS.
	Headers []string
}

// Request headers the browser-facing OAuth endpoints accept.
const (
	HeaderAuthorization = "Authorization"
	HeaderContentType   = "Content-Type"
	HeaderDPoP          = "DPoP"
)

// CORSExposeHeaders are the response headers a registered origin may read
// besides the CORS-safelisted ones: the bearer/DPoP challenge and the DPoP
// nonce (RFC 9449 §8).
const CORSExposeHeaders = "WWW-Authenticate, DPoP-Nonce"

// CORSMaxAge is how long (seconds) a browser may cache a preflight.
// Chromium caps it at 2 hours; ten minutes lets a changed header list
// reach browsers soon, while actual requests are judged per client anyway.
const CORSMaxAge = 600

// Origins answers which browser origins may call on behalf of a client
// (ClientOrigins keeps it in memory and follows client changes).
type Origins interface {
	// ClientAllows reports whether client id registered origin.
	ClientAllows(clientID, origin string) bool
	// AnyAllows reports whether any enabled client registered origin.
	AnyAllows(origin string) bool
}

// corsRoute is one route's CORS machinery, built once at start-up.
type corsRoute struct {
	cfg      CORS
	origins  Origins
	trusted  map[string]bool
	kind     Kind
	methods  string // Access-Control-Allow-Methods
	allow    string // Allow, for a plain OPTIONS
	accepted []string
	headers  string // Access-Control-Allow-Headers
}

// NewCORS returns the two middlewares of a route's cross-origin policy c,
// for a route answering methods in kind's format (nil, nil for CORSNone):
//
//   - respond goes near the top of the chain. It sets the response headers
//     when the response is written, so refusals of later layers (strict
//     input, rate limits) are readable by an allowed origin too, and it
//     judges the origin by the client known by then: the one the handler
//     authenticated (reqinfo ClientID: userinfo learns it from the access
//     token), else the claimed client id, else, for a request naming no
//     client, the union of registered origins.
//   - gate goes right after StrictInput (which records the claimed client
//     id). It answers OPTIONS itself (a preflight follows the union of
//     registered origins, a refused one gets no CORS headers; a plain
//     OPTIONS gets Allow), and refuses with 403,
//     before any handler or per-client limit runs, an actual cross-origin
//     request whose origin the claimed client (or, naming none, every
//     client) did not register: such a page cannot make the server act, and
//     learns nothing, since the refusal carries no CORS headers.
//
// trusted lists origins treated as the server's own (the issuer's, for a
// proxy that rewrites Host); origins may be nil (no client origins).
func NewCORS(c CORS, methods []string, origins Origins, kind Kind, trusted ...string) (respond, gate mux.MiddlewareFunc) {
	switch c.Mode {
	case CORSAnyOrigin:
		return anyOrigin, nil
	case CORSClientOrigins:
	default:
		return nil, nil
	}
	cr := &corsRoute{cfg: c, origins: origins, kind: kind, trusted: map[string]bool{}}
	if cr.origins == nil {
		cr.origins = noOrigins{}
	}
	for _, o := range trusted {
		cr.trusted[o] = true
	}
	var allowed []string
	for _, m := range methods {
		if m != http.MethodOptions && !slices.Contains(allowed, m) {
			allowed = append(allowed, m)
		}
	}
	cr.methods = strings.Join(allowed, ", ")
	cr.allow = strings.Join(append(slices.Clone(allowed), http.MethodOptions), ", ")
	for _, h := range c.Headers {
		cr.accepted = append(cr.accepted, strings.ToLower(h))
	}
	cr.headers = strings.Join(c.Headers, ", ")
	return cr.respond, cr.gate
}

// anyOrigin marks every response public to every origin.
func anyOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		next.ServeHTTP(w, r)
	})
}

type noOrigins struct{}

func (noOrigins) ClientAllows(string, string) bool { return false }
func (noOrigins) AnyAllows(string) bool            { return false }

// crossOrigin returns the request's Origin when the request comes from
// another origin than the server's own. A browser sends Origin on every
// CORS request; Sec-Fetch-Site, the issuer's origin and the Host header
// tell a same-origin request (as net/http.CrossOriginProtection does).
// Several Origin headers are returned as one invalid value, which no
// client registers.
func (c *corsRoute) crossOrigin(r *http.Request) (string, bool) {
	vals := r.Header.Values("Origin")
	switch {
	case len(vals) == 0:
		return "", false
	case len(vals) > 1:
		return "\x00several", true
	}
	origin := vals[0]
	if r.Header.Get("Sec-Fetch-Site") == "same-origin" || c.trusted[origin] {
		return origin, false
	}
	if u, err := url.Parse(origin); err == nil && u.Host != "" && u.Host == r.Host {
		return origin, false
	}
	return origin, true
}

// isPreflight reports a CORS preflight (Fetch §3.2.2).
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// allowedFor judges origin by the client the request names at this point.
func (c *corsRoute) allowedFor(info *reqinfo.Info, origin string) bool {
	id := info.ClientID()
	if id == "" {
		id = info.ClaimedClientID()
	}
	if id == "" {
		return c.origins.AnyAllows(origin)
	}
	return c.origins.ClientAllows(id, origin)
}

func (c *corsRoute) respond(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPreflight(r) {
			// The gate answers it with the preflight's own headers.
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		origin, cross := c.crossOrigin(r)
		if !cross {
			next.ServeHTTP(w, r)
			return
		}
		cw := &corsWriter{ResponseWriter: w, decide: func(h http.Header) {
			if c.allowedFor(reqinfo.From(r.Context()), origin) {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Expose-Headers", CORSExposeHeaders)
			}
		}}
		next.ServeHTTP(cw, r)
		cw.decideOnce() // a handler that wrote nothing still answers 200
	})
}

func (c *corsRoute) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			c.options(w, r)
			return
		}
		if origin, cross := c.crossOrigin(r); cross && !c.allowedFor(reqinfo.From(r.Context()), origin) {
			refuse(w, c.kind, http.StatusForbidden, "unauthorized_client", "Cross-origin requests from this origin are not accepted for this client.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// options answers OPTIONS: a preflight from a registered origin asking for
// one of the route's methods and only accepted headers gets the CORS
// answer; any other preflight gets none, which the browser takes as a
// refusal (it never sends the request). The refusal is a 204 all the same:
// not a failure status, so a foreign page cannot spend its visitors'
// per-address failure budget with preflights. A plain OPTIONS gets Allow.
func (c *corsRoute) options(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if !isPreflight(r) {
		h.Set("Allow", c.allow)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	origin, cross := c.crossOrigin(r)
	method := r.Header.Get("Access-Control-Request-Method")
	if !cross || !c.origins.AnyAllows(origin) || !slices.Contains(strings.Split(c.methods, ", "), method) ||
		!c.headersAccepted(r.Header.Values("Access-Control-Request-Headers")) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", c.methods)
	if c.headers != "" {
		h.Set("Access-Control-Allow-Headers", c.headers)
	}
	h.Set("Access-Control-Max-Age", strconv.Itoa(CORSMaxAge))
	w.WriteHeader(http.StatusNoContent)
}

// headersAccepted reports whether every header a preflight announces is
// one the route accepts (names compare case-insensitively).
func (c *corsRoute) headersAccepted(lists []string) bool {
	for _, list := range lists {
		for name := range strings.SplitSeq(list, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "" && !slices.Contains(c.accepted, name) {
				return false
			}
		}
	}
	return true
}

// corsWriter sets the CORS response headers right before the status line
// goes out, when the handler has learned which client it serves.
type corsWriter struct {
	http.ResponseWriter
	decide  func(http.Header)
	decided bool
}

func (w *corsWriter) decideOnce() {
	if !w.decided {
		w.decided = true
		w.decide(w.ResponseWriter.Header())
	}
}

func (w *corsWriter) WriteHeader(code int) {
	w.decideOnce()
	w.ResponseWriter.WriteHeader(code)
}

func (w *corsWriter) Write(b []byte) (int, error) {
	w.decideOnce()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *corsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
