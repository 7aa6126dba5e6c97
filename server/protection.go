package server

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/gorilla/mux"
)

// Protection bundles the protection components the server applies to every
// route according to the Policy the route declared where it was registered
// (protect.Route). Nil components are skipped.
type Protection struct {
	Limiter  *protect.Limiter
	Detector *protect.Detector
	// TrustedOrigins are accepted as same-site by the cross-origin check of
	// browser forms, besides the request's own Host (the issuer's origin,
	// for a proxy that rewrites Host).
	TrustedOrigins []string
	// Origins are the browser origins clients registered, for routes whose
	// policy answers CORS per client (nil: none registered).
	Origins protect.Origins
}

// RouteInfo describes one registered route and the protection it declared.
type RouteInfo struct {
	Listener string
	Template string
	Methods  []string
	Policy   protect.Policy
}

// wrap builds a route's chain, once, at start-up. Outermost first:
//
//  1. record the route template and protection kind in reqinfo;
//  2. security headers of the response kind (the only place they are set);
//  3. CORS response headers, decided when the response is written (so
//     every later refusal is readable by an allowed origin too);
//  4. no-store;
//  5. cross-origin refusal of browser form posts;
//  6. the address's failure budget (counts only failed requests, including
//     those refused by the next steps);
//  7. strict input: bad bytes, size, duplicates; the one read of the body,
//     which also records the claimed client id and account;
//  8. the CORS gate: preflights answered, cross-origin requests from an
//     origin the named client did not register refused;
//  9. blocks (address, claimed client);
//  10. rate limits per claimed client, API key and account.
func (p *Protection) wrap(tpl string, methods []string, pol protect.Policy, h http.Handler) (http.Handler, error) {
	chain := []mux.MiddlewareFunc{recordRoute(tpl, pol.Name), protect.Headers(pol.Response)}
	var trusted []string
	var origins protect.Origins
	if p != nil {
		trusted, origins = p.TrustedOrigins, p.Origins
	}
	corsRespond, corsGate := protect.NewCORS(pol.CORS, methods, origins, pol.Response, trusted...)
	if corsRespond != nil {
		chain = append(chain, corsRespond)
	}
	if pol.NoStore {
		chain = append(chain, protect.NoStore)
	}
	if pol.SameOrigin {
		so, err := protect.SameOrigin(pol.Response, trusted...)
		if err != nil {
			return nil, fmt.Errorf("server: route %s: %w", tpl, err)
		}
		chain = append(chain, so)
	}
	limited := p != nil && p.Limiter != nil && pol.Class != ""
	if limited {
		chain = append(chain, p.Limiter.Failures(pol.Class, pol.Response))
	}
	in := pol.Input
	in.Response = pol.Response
	chain = append(chain, protect.StrictInput(in))
	if corsGate != nil {
		chain = append(chain, corsGate)
	}
	if p != nil && p.Detector != nil && pol.Blocks {
		chain = append(chain, p.Detector.Middleware(pol.Response))
	}
	if limited {
		chain = append(chain, p.Limiter.Middleware(pol.Class, pol.Response))
	}
	return protect.Chain(chain...)(h), nil
}

// recordRoute stores the matched route template (never the raw path) and
// its protection kind for every later layer: access log, metrics, audit.
func recordRoute(tpl, kind string) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reqinfo.From(r.Context()).SetRoute(tpl, kind)
			next.ServeHTTP(w, r)
		})
	}
}

// protectRoutes replaces every route's protect.Routed handler with its
// chain. A route registered without a Policy is a start-up error: a new
// endpoint cannot go live unprotected by omission.
func (p *Protection) protectRoutes(listener string, r *mux.Router) ([]RouteInfo, error) {
	var out []RouteInfo
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		h := route.GetHandler()
		if h == nil {
			return nil // a subrouter's prefix
		}
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return fmt.Errorf("server: %s route without a path template: %w", listener, err)
		}
		routed, ok := h.(*protect.Routed)
		if !ok {
			return fmt.Errorf("server: %s route %s declares no protection policy; register it with protect.Route", listener, tpl)
		}
		methods, _ := route.GetMethods()
		if err := checkCORS(listener, tpl, methods, routed.Policy.CORS); err != nil {
			return err
		}
		wrapped, err := p.wrap(tpl, methods, routed.Policy, routed.Handler)
		if err != nil {
			return err
		}
		route.Handler(wrapped)
		out = append(out, RouteInfo{Listener: listener, Template: tpl, Methods: slices.Clone(methods), Policy: routed.Policy})
		return nil
	})
	return out, err
}

// checkCORS refuses, at start-up, a cross-origin policy on the admin
// listener (which never answers other origins) and a per-client CORS route
// that does not accept OPTIONS (its preflights would never arrive).
func checkCORS(listener, tpl string, methods []string, c protect.CORS) error {
	switch {
	case c.Mode == protect.CORSNone:
		return nil
	case listener == "admin":
		return fmt.Errorf("server: admin route %s declares CORS; the admin listener never answers cross-origin requests", tpl)
	case c.Mode == protect.CORSClientOrigins && !slices.Contains(methods, http.MethodOptions):
		return fmt.Errorf("server: route %s answers CORS per client but does not accept OPTIONS for preflights", tpl)
	}
	return nil
}
