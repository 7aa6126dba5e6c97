package protect

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// Kind is what a route answers with; it selects the Content-Security-Policy.
type Kind int

// Response kinds. API is the zero value, so a zero InputConfig or Policy
// answers JSON.
const (
	// API is JSON (OAuth endpoints, discovery, admin API): nothing may be
	// loaded or framed at all.
	API Kind = iota
	// Page is server-rendered HTML (login, consent, console): scripts,
	// styles and forms only from our own origin.
	Page
	// Static is embedded CSS, JS and images.
	Static
)

// CSP values by kind.
const (
	CSPPage   = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
	CSPAPI    = "default-src 'none'; frame-ancestors 'none'"
	CSPStatic = "default-src 'none'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"
)

// HSTS is sent only on TLS connections: over plain HTTP browsers ignore it,
// and a development listener must not pin localhost to HTTPS.
const HSTS = "max-age=63072000; includeSubDomains"

// Headers sets the security headers of kind on every response: CSP,
// X-Frame-Options DENY, nosniff, Referrer-Policy no-referrer, and HSTS when
// the request arrived over TLS. It never sets a Server header, so no
// version banner goes out. Handlers may still override a header (an
// ETag'ed JWKS sets its own Cache-Control, which this does not touch).
func Headers(kind Kind) mux.MiddlewareFunc {
	csp := CSPAPI
	switch kind {
	case Page:
		csp = CSPPage
	case Static:
		csp = CSPStatic
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Frame-Options", "DENY")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			if kind == Page {
				h.Set("Cross-Origin-Opener-Policy", "same-origin")
			}
			if r.TLS != nil {
				h.Set("Strict-Transport-Security", HSTS)
			}
			h.Del("Server")
			next.ServeHTTP(w, r)
		})
	}
}

// NoStore forbids caching (RFC 6749 §5.1, RFC 7662, RFC 9126): use it on
// every route whose response carries a token, code or secret — token,
// introspect, revoke, par, userinfo, the admin API — and on pages with forms
// (login, consent, console), so a shared or back-button cache never replays
// them.
func NoStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// MaxHeaderBytes is the http.Server.MaxHeaderBytes Bulwark uses: room for
// large cookies and bearer tokens, far below net/http's 1 MiB default.
const MaxHeaderBytes = 32 << 10

// ServerTimeouts returns the http.Server timeouts that cut off slow
// clients (slowloris and slow-body attacks):
//
//   - readHeader 5s: a client must send its headers (and, over TLS, finish
//     the handshake) within 5 s of connecting or of its previous request;
//   - read 15s: the whole request, body included (bodies are ≤ 64 KiB);
//   - write 30s: the whole response;
//   - idle 120s: keep-alive connections are closed after 2 min idle.
func ServerTimeouts() (readHeader, read, write, idle time.Duration) {
	return 5 * time.Second, 15 * time.Second, 30 * time.Second, 120 * time.Second
}
