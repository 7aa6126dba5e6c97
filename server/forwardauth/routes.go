package forwardauth

import (
	"github.com/bulwark-auth/bulwark/server/protect"

	"net/http"

	"github.com/gorilla/mux"
)

// DefaultPath is where the endpoint is mounted unless configured.
const DefaultPath = "/forward-auth"

// EnvoySuffix follows the endpoint path for Envoy's ext_authz HTTP service,
// which sends the original method and path (after its path_prefix) instead
// of X-Forwarded-* headers: path_prefix "/forward-auth/envoy".
const EnvoySuffix = "/envoy"

// Routes mounts the endpoint at path: GET and POST for gateways that send
// X-Forwarded-* or X-Original-URI headers, and any method under
// path+EnvoySuffix for Envoy. The route is an ordinary public route: it
// gets the API security headers and no per-IP limits (a gateway sends
// every caller's checks from one address); its own limits are per
// credential.
func (h *Handler) Routes(path string) func(r *mux.Router) {
	envoy := *h
	envoy.prefix = path + EnvoySuffix
	return func(r *mux.Router) {
		r.Handle(path, protect.Route(protect.ForwardAuth(), h)).Methods(http.MethodGet, http.MethodPost)
		r.PathPrefix(envoy.prefix + "/").Handler(protect.Route(protect.ForwardAuth(), &envoy))
	}
}
