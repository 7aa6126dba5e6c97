package server

import (
	"net/http"
	"strings"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/gorilla/mux"
)

// Protection bundles the protection components the server applies by route:
// every endpoint that exists, and every one added later, gets a chain from
// chainFor without the handler doing anything.
type Protection struct {
	IPs      *protect.IPResolver
	Limiter  *protect.Limiter
	Detector *protect.Detector
	// AdminBodyLimit caps admin API JSON bodies; default 1 MiB.
	AdminBodyLimit int64
}

// routeKind classifies a route template into the policy it gets.
type routeKind int

const (
	kindDefault routeKind = iota
	kindTokenish
	kindBrowserForm
	kindAuthorize
	kindUserinfo
	kindWellKnown
	kindStatic
	kindAdminAPI
	kindConsole
)

// classify maps a route template to its kind and rate-limit class.
func classify(tpl string) (routeKind, string) {
	switch tpl {
	case "/oauth2/token":
		return kindTokenish, protect.ClassToken
	case "/oauth2/introspect":
		return kindTokenish, protect.ClassIntrospect
	case "/oauth2/revoke":
		return kindTokenish, protect.ClassRevoke
	case "/oauth2/par":
		return kindTokenish, protect.ClassPAR
	case "/apikeys/self/rotate":
		return kindTokenish, protect.ClassToken
	case "/login", "/consent", "/logout":
		return kindBrowserForm, protect.ClassLogin
	case "/admin/login", "/admin/login/totp":
		return kindConsole, protect.ClassLogin
	case "/oauth2/auth":
		return kindAuthorize, ""
	case "/userinfo":
		return kindUserinfo, ""
	}
	switch {
	case strings.HasPrefix(tpl, "/.well-known/"):
		return kindWellKnown, ""
	case strings.HasPrefix(tpl, "/static/"), strings.HasPrefix(tpl, "/admin/static/"):
		return kindStatic, ""
	case strings.HasPrefix(tpl, "/admin/v1"):
		return kindAdminAPI, protect.ClassAdmin
	case strings.HasPrefix(tpl, "/admin"):
		// Console actions of a signed-in admin: the admin class, not the
		// sign-in class.
		return kindConsole, protect.ClassAdmin
	}
	return kindDefault, ""
}

// onlyPost applies mw to POST requests only (page GETs are not throttled
// like sign-in attempts).
func onlyPost(mw mux.MiddlewareFunc) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		guarded := mw(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				guarded.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// chainFor builds the middleware chain of one route kind, outermost first:
// headers, no-store, strict input (before anything reads the body), blocks,
// then rate limits.
func (p *Protection) chainFor(kind routeKind, class string) mux.MiddlewareFunc {
	form := protect.StrictInput(protect.InputConfig{})
	var blocks, blocksIPOnly, limit mux.MiddlewareFunc
	identity := func(next http.Handler) http.Handler { return next }
	blocks, blocksIPOnly, limit = identity, identity, identity
	if p.Detector != nil {
		blocks = p.Detector.Middleware(p.IPs, protect.ClientIDFromRequest)
		blocksIPOnly = p.Detector.Middleware(p.IPs, nil)
	}
	if p.Limiter != nil && class != "" {
		clientID := protect.ClientIDFromRequest
		if kind == kindBrowserForm || kind == kindConsole || kind == kindAdminAPI {
			clientID = nil
		}
		limit = p.Limiter.Middleware(class, clientID)
	}
	switch kind {
	case kindTokenish:
		return protect.Chain(protect.Headers(protect.API), protect.NoStore, form, blocks, limit)
	case kindBrowserForm:
		return protect.Chain(protect.Headers(protect.Page), protect.NoStore, form, blocksIPOnly, onlyPost(limit))
	case kindAuthorize:
		return protect.Chain(protect.Headers(protect.Page), protect.NoStore, form, blocks)
	case kindUserinfo:
		return protect.Chain(protect.Headers(protect.API), protect.NoStore, form, blocksIPOnly)
	case kindWellKnown:
		return protect.Chain(protect.Headers(protect.API), protect.StrictInput(protect.InputConfig{}))
	case kindStatic:
		return protect.Headers(protect.Static)
	case kindAdminAPI:
		body := p.AdminBodyLimit
		if body == 0 {
			body = 1 << 20
		}
		json := protect.StrictInput(protect.InputConfig{MaxBodyBytes: body, ContentTypes: []string{"application/json"}})
		// No anomaly blocks on the admin surface: an admin sharing an
		// address with an attacker must still be able to lift the block.
		return protect.Chain(protect.Headers(protect.API), protect.NoStore, json, limit)
	case kindConsole:
		return protect.Chain(protect.Headers(protect.Page), protect.NoStore, form, onlyPost(limit))
	}
	return protect.Headers(protect.API)
}

// middleware picks the chain by the matched route's template.
func (p *Protection) middleware() mux.MiddlewareFunc {
	chains := map[routeKind]map[string]mux.MiddlewareFunc{}
	get := func(kind routeKind, class string) mux.MiddlewareFunc {
		if chains[kind] == nil {
			chains[kind] = map[string]mux.MiddlewareFunc{}
		}
		if c, ok := chains[kind][class]; ok {
			return c
		}
		c := p.chainFor(kind, class)
		chains[kind][class] = c
		return c
	}
	// Build every chain up front so the map is read-only while serving.
	for _, tpl := range []string{"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke", "/oauth2/par", "/apikeys/self/rotate", "/login", "/oauth2/auth", "/userinfo", "/.well-known/x", "/static/", "/admin/v1", "/admin/login", "/admin", "/"} {
		get(classify(tpl))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tpl := ""
			if route := mux.CurrentRoute(r); route != nil {
				tpl, _ = route.GetPathTemplate()
			}
			kind, class := classify(tpl)
			chain, ok := chains[kind][class]
			if !ok {
				// Not prebuilt (a route class added without updating the
				// list above): build it for this request rather than fail.
				chain = p.chainFor(kind, class)
			}
			chain(next).ServeHTTP(w, r)
		})
	}
}
