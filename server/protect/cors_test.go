package protect

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// fixedOrigins is an Origins of fixed registrations.
type fixedOrigins map[string][]string

func (f fixedOrigins) ClientAllows(id, origin string) bool { return slices.Contains(f[id], origin) }
func (f fixedOrigins) AnyAllows(origin string) bool {
	for _, list := range f {
		if slices.Contains(list, origin) {
			return true
		}
	}
	return false
}

const (
	spaOrigin   = "https://spa.example"
	otherOrigin = "https://other.example"
	evilOrigin  = "https://evil.example"
)

var testOrigins = fixedOrigins{"spa": {spaOrigin}, "other": {otherOrigin}}

// corsChain is a CORS route's chain the way the server builds it (CORS
// response headers, strict input recording the claimed client, the gate)
// around h, for a route of methods accepting the token endpoint's headers.
func corsChain(t *testing.T, methods []string, h http.Handler) (http.Handler, *bool) {
	t.Helper()
	ran := false
	respond, gate := NewCORS(CORS{Mode: CORSClientOrigins, Headers: []string{HeaderAuthorization, HeaderContentType, HeaderDPoP}},
		methods, testOrigins, API, "https://issuer.example")
	if respond == nil || gate == nil {
		t.Fatal("CORSClientOrigins built no middleware")
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran = true
		h.ServeHTTP(w, r)
	})
	return withInfo(Chain(respond, StrictInput(InputConfig{}), gate)(inner)), &ran
}

// TestCORSHeaders is the header logic of a per-client CORS route
// (token, revocation, userinfo): preflights by the union of registered
// origins, actual requests by the client they name, the exact origin
// echoed with Vary, never credentials mode, refusals without any CORS
// header and without running the handler.
func TestCORSHeaders(t *testing.T) {
	t.Parallel()
	// The handler plays userinfo when X-Learn names a client: it records
	// the access token's client, as the real handler does.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Learn"); id != "" {
			reqinfo.From(r.Context()).SetClientID(id)
		}
		if r.Header.Get("X-Silent") != "" {
			return // writes nothing: net/http answers 200
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	type want struct {
		status  int
		acao    string // "" = no Access-Control-Allow-Origin
		handler bool
		vary    []string
		extra   map[string]string
	}
	preflightOK := map[string]string{
		"Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Authorization, Content-Type, DPoP",
		"Access-Control-Max-Age": "600",
	}
	cases := []struct {
		name    string
		method  string
		origins []string
		hdr     map[string]string
		body    string
		basic   string
		want    want
	}{
		{name: "case=preflight from a registered origin", method: http.MethodOptions, origins: []string{spaOrigin},
			hdr:  map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,dpop"},
			want: want{status: 204, acao: spaOrigin, vary: []string{"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"}, extra: preflightOK}},
		{name: "case=preflight headers compare case-insensitively", method: http.MethodOptions, origins: []string{otherOrigin},
			hdr:  map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "AUTHORIZATION, DPoP"},
			want: want{status: 204, acao: otherOrigin, extra: preflightOK}},
		{name: "case=preflight from an unregistered origin", method: http.MethodOptions, origins: []string{evilOrigin},
			hdr:  map[string]string{"Access-Control-Request-Method": "POST"},
			want: want{status: 204, vary: []string{"Origin"}}},
		{name: "case=preflight for a method the route does not take", method: http.MethodOptions, origins: []string{spaOrigin},
			hdr:  map[string]string{"Access-Control-Request-Method": "PUT"},
			want: want{status: 204}},
		{name: "case=preflight for a header the route does not take", method: http.MethodOptions, origins: []string{spaOrigin},
			hdr:  map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-requested-with"},
			want: want{status: 204}},
		{name: "case=plain OPTIONS gets Allow", method: http.MethodOptions,
			want: want{status: 204, extra: map[string]string{"Allow": "POST, OPTIONS"}}},
		{name: "case=token request of the client that registered the origin", method: http.MethodPost, origins: []string{spaOrigin},
			body: "client_id=spa&grant_type=x",
			want: want{status: 401, acao: spaOrigin, handler: true, vary: []string{"Origin"},
				extra: map[string]string{"Access-Control-Expose-Headers": "WWW-Authenticate, DPoP-Nonce"}}},
		{name: "case=the client named by HTTP Basic decides", method: http.MethodPost, origins: []string{otherOrigin}, basic: "other",
			body: "grant_type=x", want: want{status: 401, acao: otherOrigin, handler: true}},
		{name: "case=origin registered by another client is refused before the handler", method: http.MethodPost, origins: []string{otherOrigin},
			body: "client_id=spa&grant_type=x", want: want{status: 403, vary: []string{"Origin"}}},
		{name: "case=unregistered origin naming no client is refused", method: http.MethodPost, origins: []string{evilOrigin},
			body: "grant_type=x", want: want{status: 403}},
		{name: "case=unknown client is refused", method: http.MethodPost, origins: []string{spaOrigin},
			body: "client_id=nobody", want: want{status: 403}},
		{name: "case=registered origin naming no client reaches the handler", method: http.MethodPost, origins: []string{otherOrigin},
			body: "grant_type=x", want: want{status: 401, acao: otherOrigin, handler: true}},
		{name: "case=userinfo: the token's client allows the origin", method: http.MethodPost, origins: []string{spaOrigin},
			hdr: map[string]string{"X-Learn": "spa"}, want: want{status: 401, acao: spaOrigin, handler: true}},
		{name: "case=userinfo: the token's client does not allow the origin", method: http.MethodPost, origins: []string{otherOrigin},
			hdr: map[string]string{"X-Learn": "spa"}, want: want{status: 401, handler: true, vary: []string{"Origin"}}},
		{name: "case=a handler that writes nothing still answers CORS", method: http.MethodPost, origins: []string{spaOrigin},
			body: "client_id=spa", hdr: map[string]string{"X-Silent": "1"}, want: want{status: 200, acao: spaOrigin, handler: true}},
		{name: "case=no Origin (not a browser)", method: http.MethodPost, body: "client_id=spa",
			want: want{status: 401, handler: true, vary: []string{"Origin"}}},
		{name: "case=same origin by Host", method: http.MethodPost, origins: []string{"http://example.com"}, body: "client_id=spa",
			want: want{status: 401, handler: true}},
		{name: "case=same origin by the issuer's origin", method: http.MethodPost, origins: []string{"https://issuer.example"}, body: "client_id=spa",
			want: want{status: 401, handler: true}},
		{name: "case=opaque origin", method: http.MethodPost, origins: []string{"null"}, body: "client_id=spa", want: want{status: 403}},
		{name: "case=several Origin headers", method: http.MethodPost, origins: []string{spaOrigin, spaOrigin}, body: "client_id=spa", want: want{status: 403}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			chain, ran := corsChain(t, []string{http.MethodPost, http.MethodOptions}, h)
			req := httptest.NewRequest(tc.method, "http://example.com/oauth2/token", strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", formType)
			}
			for _, o := range tc.origins {
				req.Header.Add("Origin", o)
			}
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			if tc.basic != "" {
				req.SetBasicAuth(tc.basic, "secret")
			}
			rec := httptest.NewRecorder()
			chain.ServeHTTP(rec, req)
			res := rec.Result()
			if res.StatusCode != tc.want.status {
				t.Fatalf("status %d, want %d (%s)", res.StatusCode, tc.want.status, rec.Body)
			}
			if got := res.Header.Values("Access-Control-Allow-Origin"); tc.want.acao == "" && len(got) > 0 || tc.want.acao != "" && !slices.Equal(got, []string{tc.want.acao}) {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, tc.want.acao)
			}
			if tc.want.acao == "" {
				for name := range res.Header {
					if strings.HasPrefix(name, "Access-Control-") {
						t.Fatalf("refused or same-origin answer carries %s", name)
					}
				}
			}
			if got := res.Header.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Fatalf("credentials mode answered: %q", got)
			}
			if *ran != tc.want.handler {
				t.Fatalf("handler ran = %v, want %v", *ran, tc.want.handler)
			}
			vary := strings.Join(res.Header.Values("Vary"), ", ")
			for _, v := range tc.want.vary {
				if !strings.Contains(vary, v) {
					t.Fatalf("Vary %q lacks %s", vary, v)
				}
			}
			for k, v := range tc.want.extra {
				if got := res.Header.Get(k); got != v {
					t.Fatalf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestCORSMethodsFollowTheRoute: a route taking GET and POST (userinfo)
// allows both in its preflight, never OPTIONS itself.
func TestCORSMethodsFollowTheRoute(t *testing.T) {
	t.Parallel()
	chain, _ := corsChain(t, []string{http.MethodGet, http.MethodPost, http.MethodOptions}, http.NotFoundHandler())
	for method, allowed := range map[string]bool{"GET": true, "POST": true, "DELETE": false, "OPTIONS": false} {
		req := httptest.NewRequest(http.MethodOptions, "http://example.com/userinfo", nil)
		req.Header.Set("Origin", spaOrigin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		rec := httptest.NewRecorder()
		chain.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent || (rec.Header().Get("Access-Control-Allow-Origin") != "") != allowed {
			t.Fatalf("preflight for %s: %d %v, want allowed %v", method, rec.Code, rec.Header(), allowed)
		}
		if allowed && rec.Header().Get("Access-Control-Allow-Methods") != "GET, POST" {
			t.Fatalf("Access-Control-Allow-Methods = %q", rec.Header().Get("Access-Control-Allow-Methods"))
		}
	}
}

// TestCORSModes: a public document answers every origin with *, a route
// without CORS builds no middleware at all (no header can leak out).
func TestCORSModes(t *testing.T) {
	t.Parallel()
	respond, gate := NewCORS(CORS{Mode: CORSAnyOrigin}, []string{"GET"}, testOrigins, API)
	if gate != nil {
		t.Fatal("a public document needs no gate")
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "http://example.com/.well-known/jwks.json", nil)
	req.Header.Set("Origin", evilOrigin)
	respond(http.NotFoundHandler()).ServeHTTP(rec, req)
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" || rec.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("public document headers: %v", rec.Header())
	}
	if respond, gate := NewCORS(CORS{}, []string{"POST"}, testOrigins, API); respond != nil || gate != nil {
		t.Fatal("CORSNone built middleware")
	}
}

// TestCORSOriginsOf: "+" stands for the origins of the redirect URIs as
// browsers serialize them; explicit origins stay; a disabled client has
// none.
func TestCORSOriginsOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		c    storage.Client
		want []string
	}{
		{"case=plus expands to redirect origins", storage.Client{AllowedCORSOrigins: []string{"+"}, RedirectURIs: []string{
			"https://App.Example.com:443/cb", "https://app.example.com/other", "http://127.0.0.2:9877/callback?x=1",
			"http://localhost:80/cb", "com.example.app:/cb", "https://[::1]:8443/cb"}},
			[]string{"https://app.example.com", "http://127.0.0.2:9877", "http://localhost", "https://[::1]:8443"}},
		{"case=explicit and plus together, no duplicates", storage.Client{AllowedCORSOrigins: []string{"https://spa.example", "+"},
			RedirectURIs: []string{"https://spa.example/cb", "https://b.example/cb"}}, []string{"https://spa.example", "https://b.example"}},
		{"case=no plus, redirect URIs do not count", storage.Client{AllowedCORSOrigins: []string{"https://spa.example"},
			RedirectURIs: []string{"https://b.example/cb"}}, []string{"https://spa.example"}},
		{"case=disabled client", storage.Client{Disabled: true, AllowedCORSOrigins: []string{"https://spa.example"}}, nil},
		{"case=none", storage.Client{RedirectURIs: []string{"https://b.example/cb"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := CORSOriginsOf(&tc.c); !slices.Equal(got, tc.want) {
				t.Fatalf("CORSOriginsOf = %q, want %q", got, tc.want)
			}
		})
	}
}
