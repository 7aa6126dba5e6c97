package protect

import (
	"net/http"

	"github.com/gorilla/mux"
)

// SameOrigin refuses cross-site state-changing requests (POST, PUT, DELETE,
// ...) with 403, using net/http.CrossOriginProtection: the browser's
// Sec-Fetch-Site header, or else Origin compared with Host. It is defence
// in depth for forms that also carry a CSRF token: a token leaked or fixed
// by another bug still cannot be used from another site. Requests without
// either header (non-browser clients) and safe methods pass. trusted lists
// extra origins ("https://auth.example.com", the issuer) accepted as same
// site, for a proxy that rewrites Host.
func SameOrigin(kind Kind, trusted ...string) (mux.MiddlewareFunc, error) {
	cop := http.NewCrossOriginProtection()
	for _, o := range trusted {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, err
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		refuse(w, kind, http.StatusForbidden, "cross_origin_request", "Cross-site form submissions are not accepted.")
	}))
	return cop.Handler, nil
}
