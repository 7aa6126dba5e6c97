package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/gorilla/mux"
)

// TestProtectionAppliesByRoute checks the policy table end to end through
// the router: each route class gets its headers and its own rate-limit
// class, and unmatched requests still get the API headers.
func TestProtectionAppliesByRoute(t *testing.T) {
	limiter := protect.NewLimiter(protect.RateConfig{PerIP: map[string]protect.Limit{
		protect.ClassLogin: {Rate: 0.001, Burst: 1},
		protect.ClassAdmin: {Rate: 0.001, Burst: 3},
	}})
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }
	ts, _ := newTestServerWith(t, &Protection{Limiter: limiter}, func(r *mux.Router) {
		for _, p := range []string{"/login", "/admin/login", "/admin/clients", "/oauth2/token", "/static/app.css", "/admin/v1/clients"} {
			r.HandleFunc(p, ok)
		}
	})
	post := func(path string) *http.Response {
		res, err := http.Post(ts.URL+path, "application/x-www-form-urlencoded", strings.NewReader("a=b"))
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res
	}
	// Sign-in pages share the strict login class; console actions use the
	// admin class and are not throttled like sign-ins.
	if res := post("/admin/login"); res.StatusCode != 200 {
		t.Fatalf("first console sign-in: %d", res.StatusCode)
	}
	if res := post("/admin/login"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second console sign-in must hit the login limit: %d", res.StatusCode)
	}
	for i := 0; i < 3; i++ {
		if res := post("/admin/clients"); res.StatusCode != 200 {
			t.Fatalf("console action %d: %d", i, res.StatusCode)
		}
	}
	cases := map[string]string{
		"/login":          protect.CSPPage,
		"/oauth2/token":   protect.CSPAPI,
		"/static/app.css": protect.CSPStatic,
		"/nowhere":        protect.CSPAPI,
	}
	for path, csp := range cases {
		res, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if got := res.Header.Get("Content-Security-Policy"); got != csp {
			t.Errorf("%s: CSP %q, want %q", path, got, csp)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", path)
		}
	}
	if res := post("/admin/v1/clients"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a form body on the JSON admin API must be refused: %d", res.StatusCode)
	}
}

func newTestServerWith(t *testing.T, p *Protection, mount func(*mux.Router)) (*httptest.Server, *Server) {
	t.Helper()
	s, err := New(Config{Logger: quietLogger(), DB: fakeDB{}, Protection: p, Public: []Mounter{MounterFunc(mount)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.PublicHandler())
	t.Cleanup(srv.Close)
	return srv, s
}
