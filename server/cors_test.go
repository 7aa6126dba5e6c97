package server

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/server/protect"
)

type testOrigins map[string][]string

func (f testOrigins) ClientAllows(id, origin string) bool { return slices.Contains(f[id], origin) }
func (f testOrigins) AnyAllows(origin string) bool {
	for _, l := range f {
		if slices.Contains(l, origin) {
			return true
		}
	}
	return false
}

// TestCORSPolicyMistakesAreStartupErrors: the admin listener never answers
// cross-origin, and a per-client CORS route must accept preflights.
func TestCORSPolicyMistakesAreStartupErrors(t *testing.T) {
	ok := func(http.ResponseWriter, *http.Request) {}
	for _, tc := range []struct {
		name  string
		cfg   Config
		wants string
	}{
		{"case=CORS on the admin listener", Config{Admin: []Mounter{MounterFunc(func(r *mux.Router) {
			r.Handle("/admin/v1/x", protect.RouteFunc(protect.Discovery(), ok)).Methods(http.MethodGet)
		})}}, "admin listener never answers cross-origin"},
		{"case=per-client CORS without OPTIONS", Config{Public: []Mounter{MounterFunc(func(r *mux.Router) {
			r.Handle("/oauth2/token", protect.RouteFunc(protect.BrowserOAuthEndpoint(protect.ClassToken), ok)).Methods(http.MethodPost)
		})}}, "does not accept OPTIONS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger, tc.cfg.DB = quietLogger(), fakeDB{}
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("New = %v, want %q", err, tc.wants)
			}
		})
	}
}

// TestCORSThroughTheServer: through the real route chain, a registered
// origin reaches the token endpoint while an origin registered by another
// client is refused before the handler and before the client's rate limit
// (a foreign page cannot spend the client's budget), and the cookie pages
// keep refusing cross-site form posts even from a registered origin.
func TestCORSThroughTheServer(t *testing.T) {
	const spa, other = "https://spa.example", "https://other.example"
	limiter := protect.NewLimiter(protect.RateConfig{PerClient: map[string]protect.Limit{protect.ClassToken: {Rate: 0.001, Burst: 2}}})
	handled := 0
	ts, _ := newTestServerWith(t, &Protection{Limiter: limiter, Origins: testOrigins{"spa": {spa}, "other": {other}}}, func(r *mux.Router) {
		r.Handle("/oauth2/token", protect.RouteFunc(protect.BrowserOAuthEndpoint(protect.ClassToken, protect.HeaderContentType),
			func(w http.ResponseWriter, _ *http.Request) { handled++; _, _ = w.Write([]byte("{}")) })).Methods(http.MethodPost, http.MethodOptions)
		r.Handle("/oauth2/introspect", protect.RouteFunc(protect.OAuthEndpoint(protect.ClassIntrospect),
			func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) })).Methods(http.MethodPost)
		r.Handle("/login", protect.RouteFunc(protect.PageForm(), func(http.ResponseWriter, *http.Request) {})).Methods(http.MethodPost)
	})
	do := func(method, path, origin, body string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res
	}
	for i := range 5 {
		if res := do(http.MethodPost, "/oauth2/token", other, "client_id=spa"); res.StatusCode != http.StatusForbidden || res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("foreign origin %d: %d %v", i, res.StatusCode, res.Header)
		}
	}
	if handled != 0 {
		t.Fatalf("the handler ran %d times for refused origins", handled)
	}
	for i := range 2 {
		res := do(http.MethodPost, "/oauth2/token", spa, "client_id=spa")
		if res.StatusCode != http.StatusOK || res.Header.Get("Access-Control-Allow-Origin") != spa {
			t.Fatalf("registered origin %d: %d %v", i, res.StatusCode, res.Header)
		}
	}
	// The client's own budget (burst 2) is spent by its own requests only,
	// and its refusal is readable by its origin.
	if res := do(http.MethodPost, "/oauth2/token", spa, "client_id=spa"); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Access-Control-Allow-Origin") != spa {
		t.Fatalf("over the client's limit: %d %v", res.StatusCode, res.Header)
	}

	// Introspection never answers cross-origin: no preflight, no headers.
	if res := do(http.MethodOptions, "/oauth2/introspect", spa, "", "Access-Control-Request-Method", "POST"); res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("introspection preflight: %d %v", res.StatusCode, res.Header)
	}
	if res := do(http.MethodPost, "/oauth2/introspect", spa, "client_id=spa"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("introspection answered cross-origin: %v", res.Header)
	}

	// A registered origin is no more same-site for the cookie pages.
	if res := do(http.MethodPost, "/login", spa, "username=a", "Sec-Fetch-Site", "cross-site"); res.StatusCode != http.StatusForbidden || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("cross-site login post from a registered origin: %d %v", res.StatusCode, res.Header)
	}
	if res := do(http.MethodPost, "/login", spa, "username=a"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin login post (Origin only) from a registered origin: %d", res.StatusCode)
	}
}

// TestRefusedPreflightsSpendNoFailureBudget: a foreign page cannot lock its
// visitors' (possibly shared) address out of the token endpoint with
// preflights: a refused preflight is answered without CORS headers but is
// not a failure.
func TestRefusedPreflightsSpendNoFailureBudget(t *testing.T) {
	limiter := protect.NewLimiter(protect.RateConfig{PerIP: map[string]protect.Limit{protect.ClassToken: {Rate: 0.001, Burst: 3}}})
	ts, _ := newTestServerWith(t, &Protection{Limiter: limiter, Origins: testOrigins{"spa": {"https://spa.example"}}}, func(r *mux.Router) {
		r.Handle("/oauth2/token", protect.RouteFunc(protect.BrowserOAuthEndpoint(protect.ClassToken, protect.HeaderContentType),
			func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) })).Methods(http.MethodPost, http.MethodOptions)
	})
	for i := range 10 {
		req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/oauth2/token", nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Access-Control-Request-Method", http.MethodPost)
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("refused preflight %d: %d %v", i, res.StatusCode, res.Header)
		}
	}
	res, err := http.Post(ts.URL+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader("client_id=spa"))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("after refused preflights the address is limited: %d", res.StatusCode)
	}
}
