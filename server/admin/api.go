package admin

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/apikeyauth"
	"github.com/bulwark-auth/bulwark/server/protect"
)

// Prefix is where the API is mounted.
const Prefix = "/admin/v1"

// ScopeAny marks a route any authenticated API key may call.
const ScopeAny = ""

// PrincipalFunc returns the principal the authentication middleware put in
// the request context.
type PrincipalFunc func(ctx context.Context) (*apikeys.Principal, bool)

// APIOption adjusts NewAPI.
type APIOption func(*API)

// WithPrincipal sets how the API finds the authenticated principal.
func WithPrincipal(f PrincipalFunc) APIOption { return func(a *API) { a.principal = f } }

// API is the JSON admin REST API over a Service.
type API struct {
	svc       *Service
	auth      mux.MiddlewareFunc
	principal PrincipalFunc
}

// NewAPI returns the API. auth authenticates API keys and answers 401
// itself (apikeyauth.Middleware); it must put the principal where the
// PrincipalFunc finds it (by default apikeyauth.PrincipalFrom).
func NewAPI(svc *Service, auth mux.MiddlewareFunc, opts ...APIOption) *API {
	a := &API{svc: svc, auth: auth, principal: apikeyauth.PrincipalFrom}
	for _, o := range opts {
		o(a)
	}
	return a
}

type handler func(w http.ResponseWriter, r *http.Request, a Actor) error

// route is one endpoint: method, path under Prefix, required scope.
type route struct {
	method, path, scope string
	h                   handler
}

func (a *API) routes() []route {
	const (
		cr = apikeys.ScopeClientsRead
		cw = apikeys.ScopeClientsWrite
		us = apikeys.ScopeUsers
		ak = apikeys.ScopeAPIKeys
		sk = apikeys.ScopeKeys
		au = apikeys.ScopeAuditRead
	)
	return []route{
		{http.MethodGet, "/clients", cr, a.listClients},
		{http.MethodPost, "/clients", cw, a.createClient},
		{http.MethodGet, "/clients/{id}", cr, a.getClient},
		{http.MethodPut, "/clients/{id}", cw, a.updateClient},
		{http.MethodPatch, "/clients/{id}", cw, a.patchClient},
		{http.MethodDelete, "/clients/{id}", cw, a.deleteClient},
		{http.MethodPost, "/clients/{id}/secret", cw, a.rotateClientSecret},
		{http.MethodPost, "/clients/{id}/disable", cw, a.disableClient},
		{http.MethodPost, "/clients/{id}/enable", cw, a.enableClient},

		{http.MethodGet, "/registration/tokens", cr, a.listInitialTokens},
		{http.MethodPost, "/registration/tokens", cw, a.createInitialToken},
		{http.MethodGet, "/registration/tokens/{id}", cr, a.getInitialToken},
		{http.MethodPost, "/registration/tokens/{id}/revoke", cw, a.revokeInitialToken},

		{http.MethodGet, "/users", us, a.listUsers},
		{http.MethodPost, "/users", us, a.createUser},
		// The self route comes first: "self" would otherwise match {id}.
		{http.MethodPost, "/users/self/password", ScopeAny, a.changeOwnPassword},
		{http.MethodGet, "/users/{id}", us, a.getUser},
		{http.MethodPut, "/users/{id}", us, a.updateUser},
		{http.MethodPatch, "/users/{id}", us, a.patchUser},
		{http.MethodDelete, "/users/{id}", us, a.deleteUser},
		{http.MethodPost, "/users/{id}/disable", us, a.disableUser},
		{http.MethodPost, "/users/{id}/enable", us, a.enableUser},
		{http.MethodPost, "/users/{id}/password", us, a.resetPassword},
		{http.MethodPost, "/users/{id}/totp/reset", us, a.resetTOTP},
		{http.MethodGet, "/users/{id}/consents", us, a.listConsents},
		{http.MethodDelete, "/users/{id}/consents/{client_id}", us, a.revokeConsent},
		{http.MethodDelete, "/users/{id}/sessions", us, a.revokeSessions},

		// The self routes come first: "self" would otherwise match {id}.
		{http.MethodGet, "/apikeys/self", ScopeAny, a.getSelfAPIKey},
		{http.MethodPost, "/apikeys/self/revoke", ScopeAny, a.revokeSelfAPIKey},
		{http.MethodGet, "/apikeys", ak, a.listAPIKeys},
		{http.MethodPost, "/apikeys", ak, a.createAPIKey},
		{http.MethodGet, "/apikeys/{id}", ak, a.getAPIKey},
		{http.MethodPost, "/apikeys/{id}/rotate", ak, a.rotateAPIKey},
		{http.MethodPost, "/apikeys/{id}/revoke", ak, a.revokeAPIKey},

		{http.MethodGet, "/keys", sk, a.listSigningKeys},
		{http.MethodPost, "/keys/rotate", sk, a.rotateSigningKey},
		{http.MethodPost, "/keys/{kid}/revoke", sk, a.revokeSigningKey},

		{http.MethodGet, "/audit", au, a.listAudit},
		{http.MethodGet, "/blocks", au, a.listBlocks},
		{http.MethodDelete, "/blocks/{kind}/{value}", us, a.liftBlock},
	}
}

// OpenAPIPath is where the OpenAPI document is served, without an API
// key: it describes the API and holds no secrets.
const OpenAPIPath = Prefix + "/openapi.json"

// Register mounts the API under Prefix on r with the admin-API protection
// policy (JSON input, no-store, the admin rate-limit class). Every route
// but the OpenAPI document runs behind the authentication middleware,
// applied here once per route, and its own scope check. A known path with
// a method it does not serve is 405 with Allow (RFC 9110 §15.5.6), not 404.
func (a *API) Register(r *mux.Router) {
	policy := protect.AdminAPI()
	authed := func(h http.Handler) http.Handler {
		if a.auth != nil {
			h = a.auth(h)
		}
		return protect.Route(policy, h)
	}
	r.Handle(OpenAPIPath, protect.Route(policy, http.HandlerFunc(a.openAPI))).Methods(http.MethodGet)
	r.Handle(OpenAPIPath, protect.Route(policy, methodNotAllowed([]string{http.MethodGet})))
	routes := a.routes()
	var paths []string
	allow := map[string][]string{}
	for _, rt := range routes {
		r.Handle(Prefix+rt.path, authed(a.guard(rt))).Methods(rt.method)
		if _, ok := allow[rt.path]; !ok {
			paths = append(paths, rt.path)
		}
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	// After every method route, in the same order, so "/apikeys/self"
	// still shadows "/apikeys/{id}".
	for _, p := range paths {
		r.Handle(Prefix+p, authed(methodNotAllowed(allow[p])))
	}
}

// methodNotAllowed answers 405 naming the methods the path serves.
func methodNotAllowed(methods []string) http.Handler {
	allow := strings.Join(methods, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{
			Error: "method_not_allowed", Description: r.Method + " is not allowed here; allowed: " + allow,
		})
	})
}

// guard enforces function-level authorization: no principal is 401 (fail
// closed even if the middleware is miswired), a missing scope is 403.
func (a *API) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		p, ok := a.principal(r.Context())
		if !ok || p == nil {
			a.writeError(w, r, errUnauthenticated)
			return
		}
		if rt.scope != ScopeAny && !slices.Contains(p.Scopes, rt.scope) {
			a.writeError(w, r, &scopeError{scope: rt.scope})
			return
		}
		if err := rt.h(w, r, Actor{ID: p.Subject(), Scopes: slices.Clone(p.Scopes)}); err != nil {
			a.writeError(w, r, err)
		}
	})
}
