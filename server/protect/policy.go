package protect

import (
	"net/http"
)

// Policy is what a route declares about its own protection where it is
// registered (protect.Route), so no central file lists other packages'
// paths. The server builds each route's middleware chain from its Policy
// once, at start-up.
type Policy struct {
	// Name is the protection kind, as logged and shown in the route
	// listing: "oauth-endpoint", "page-form", "admin-api", ...
	Name string
	// Response selects the security headers and the format of refusals
	// (OAuth JSON for API, an HTML page for Page).
	Response Kind
	// NoStore forbids caching of the response.
	NoStore bool
	// Class is the rate-limit class ("" for none): per claimed client for
	// successful traffic, per source address for failures only.
	Class string
	// Input overrides the strict-input defaults (the admin API takes JSON).
	Input InputConfig
	// Blocks refuses requests from blocked addresses and blocked clients.
	Blocks bool
	// SameOrigin refuses cross-site state-changing requests (Sec-Fetch-Site
	// and Origin, net/http.CrossOriginProtection): browser forms that a
	// CSRF token alone protected before.
	SameOrigin bool
	// CORS says whether and to which origins the route answers
	// cross-origin browser requests (cors.go). The zero value answers
	// none; the server refuses a CORS route on the admin listener.
	CORS CORS
}

// The policies of Bulwark's routes, by kind. Packages pick one when they
// register a route. They are functions, not variables, so no caller can
// change another route's policy.

// Authorize is /oauth2/auth: a browser redirect endpoint.
func Authorize() Policy {
	return Policy{Name: "authorize", Response: Page, NoStore: true, Blocks: true}
}

// PageForm is a sign-in, consent or logout page (GET shows the form,
// POST submits it).
func PageForm() Policy {
	return Policy{Name: "page-form", Response: Page, NoStore: true, Class: ClassLogin, Blocks: true, SameOrigin: true}
}

// Userinfo is the OIDC UserInfo endpoint (bearer token). Single-page apps
// call it from the origins their client registered; the client is the
// access token's, which the handler records in reqinfo.
func Userinfo() Policy {
	return Policy{Name: "userinfo", Response: API, NoStore: true, Class: ClassUserinfo, Blocks: true,
		CORS: CORS{Mode: CORSClientOrigins, Headers: []string{HeaderAuthorization, HeaderContentType, HeaderDPoP}}}
}

// Discovery is a public, cacheable document (discovery, JWKS), readable
// from any origin.
func Discovery() Policy {
	return Policy{Name: "discovery", Response: API, CORS: CORS{Mode: CORSAnyOrigin}}
}

// StaticAsset is an embedded CSS/JS/image file.
func StaticAsset() Policy {
	return Policy{Name: "static", Response: Static}
}

// AdminAPI is the JSON admin API (API-key authenticated).
func AdminAPI() Policy {
	return Policy{Name: "admin-api", Response: API, NoStore: true, Class: ClassAdmin,
		Input: InputConfig{MaxBodyBytes: 1 << 20, ContentTypes: []string{"application/json", "application/merge-patch+json"}}}
}

// Console is a page of the admin console for a signed-in admin.
func Console() Policy {
	return Policy{Name: "console", Response: Page, NoStore: true, Class: ClassAdmin, SameOrigin: true}
}

// ConsoleLogin is the console's sign-in pages.
func ConsoleLogin() Policy {
	return Policy{Name: "console-login", Response: Page, NoStore: true, Class: ClassLogin, SameOrigin: true}
}

// Ops is health, readiness and metrics.
func Ops() Policy {
	return Policy{Name: "ops", Response: API, NoStore: true}
}

// ForwardAuth is the gateway subrequest endpoint (server/forwardauth). A
// gateway is one address carrying everyone's traffic, so nothing here is
// limited or blocked per address; the endpoint limits per credential.
func ForwardAuth() Policy {
	return Policy{Name: "forward-auth", Response: API, NoStore: true}
}

// OAuthEndpoint is the policy of a client-authenticated OAuth endpoint of
// rate-limit class class (ClassToken, ClassIntrospect, ...).
func OAuthEndpoint(class string) Policy {
	return Policy{Name: "oauth-endpoint", Response: API, NoStore: true, Class: class, Blocks: true}
}

// Registration is dynamic client registration (RFC 7591/7592): a JSON
// endpoint authorized by a bearer token that names no client. claimant
// names the token (or client) the per-identity limit keys on; the
// per-address budget counts failures only, as everywhere.
func Registration(claimant func(*http.Request) string) Policy {
	return Policy{Name: "registration", Response: API, NoStore: true, Class: ClassRegister, Blocks: true,
		Input: InputConfig{MaxBodyBytes: 64 << 10, ContentTypes: []string{"application/json"}, Claimant: claimant}}
}

// BrowserOAuthEndpoint is OAuthEndpoint(class) for an endpoint single-page
// apps call from their own origin (token, revocation): it also answers
// CORS for the origins registered by the client the request names,
// accepting the request headers listed. Register the route with OPTIONS
// among its methods, for preflights.
func BrowserOAuthEndpoint(class string, headers ...string) Policy {
	p := OAuthEndpoint(class)
	p.CORS = CORS{Mode: CORSClientOrigins, Headers: headers}
	return p
}

// Routed is a handler together with its route's Policy. The server finds it
// on every registered route and replaces it with the policy's chain; served
// directly (a package's own tests) it is just the handler.
type Routed struct {
	Policy  Policy
	Handler http.Handler
}

// ServeHTTP serves the handler without any protection.
func (h *Routed) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.Handler.ServeHTTP(w, r) }

// Route attaches p to h. Register every route through it:
//
//	r.Handle("/oauth2/token", protect.Route(protect.OAuthEndpoint(protect.ClassToken), h))
func Route(p Policy, h http.Handler) http.Handler { return &Routed{Policy: p, Handler: h} }

// RouteFunc is Route for a handler function.
func RouteFunc(p Policy, f func(http.ResponseWriter, *http.Request)) http.Handler {
	return Route(p, http.HandlerFunc(f))
}
