package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/gorilla/mux"
)

// TestProtectionAppliesByRoute checks, through the router, that each route
// gets the chain of the policy it declared: headers by response kind, its
// rate-limit class counting failures per address, JSON-only admin input;
// unmatched requests get the API headers.
func TestProtectionAppliesByRoute(t *testing.T) {
	limiter := protect.NewLimiter(protect.RateConfig{PerIP: map[string]protect.Limit{
		protect.ClassLogin: {Rate: 0.001, Burst: 1},
		protect.ClassAdmin: {Rate: 0.001, Burst: 3},
	}})
	// A handler that fails (401) when asked to, like a wrong password.
	h := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if strings.Contains(string(b), "fail=1") {
			w.WriteHeader(http.StatusUnauthorized)
		}
		_, _ = w.Write([]byte("ok"))
	}
	routes := map[string]protect.Policy{
		"/login":            protect.PageForm(),
		"/admin/login":      protect.ConsoleLogin(),
		"/admin/clients":    protect.Console(),
		"/oauth2/token":     protect.OAuthEndpoint(protect.ClassToken),
		"/static/app.css":   protect.StaticAsset(),
		"/admin/v1/clients": protect.AdminAPI(),
	}
	ts, s := newTestServerWith(t, &Protection{Limiter: limiter}, func(r *mux.Router) {
		for p, pol := range routes {
			r.Handle(p, protect.RouteFunc(pol, h))
		}
	})
	post := func(path, body string) *http.Response {
		res, err := http.Post(ts.URL+path, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res
	}
	// Successful sign-ins from one address are never limited per address.
	for i := 0; i < 5; i++ {
		if res := post("/admin/login", "a=b"); res.StatusCode != 200 {
			t.Fatalf("successful console sign-in %d: %d", i, res.StatusCode)
		}
	}
	if res := post("/admin/login", "fail=1"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("failed console sign-in: %d", res.StatusCode)
	}
	if res := post("/admin/login", "a=b"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after the failure budget is spent the address must be limited: %d", res.StatusCode)
	}
	// Console actions are another class.
	for i := 0; i < 3; i++ {
		if res := post("/admin/clients", "a=b"); res.StatusCode != 200 {
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
	if res := post("/admin/v1/clients", "a=b"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a form body on the JSON admin API must be refused: %d", res.StatusCode)
	}
	// Every declared route is listed with its policy (plus health).
	listed := map[string]string{}
	for _, ri := range s.Routes() {
		listed[ri.Template] = ri.Policy.Name
	}
	for p, pol := range routes {
		if listed[p] != pol.Name {
			t.Errorf("Routes(): %s has policy %q, want %q", p, listed[p], pol.Name)
		}
	}
	if listed["/healthz"] != "ops" {
		t.Errorf("Routes() lacks /healthz: %v", listed)
	}
}

// TestUndeclaredRouteIsAStartupError: a route without a policy cannot go
// live unprotected by omission.
func TestUndeclaredRouteIsAStartupError(t *testing.T) {
	_, err := New(Config{Logger: quietLogger(), DB: fakeDB{}, Public: []Mounter{MounterFunc(func(r *mux.Router) {
		r.HandleFunc("/naked", func(http.ResponseWriter, *http.Request) {})
	})}})
	if err == nil || !strings.Contains(err.Error(), "/naked") {
		t.Fatalf("New = %v, want an error naming /naked", err)
	}
}

// TestFactsEstablishedOnce: the handler reads the route, its protection
// kind, the client IP and the claimed client id from reqinfo, set before
// it runs, and the body is still whole.
func TestFactsEstablishedOnce(t *testing.T) {
	var got reqinfo.Info
	var body string
	var gotRoute, gotKind, gotClaimed string
	ts, _ := newTestServerWith(t, nil, func(r *mux.Router) {
		r.Handle("/oauth2/token", protect.RouteFunc(protect.OAuthEndpoint(protect.ClassToken), func(_ http.ResponseWriter, r *http.Request) {
			info := reqinfo.From(r.Context())
			got.IP, got.ID = info.IP, info.ID
			gotRoute, gotKind, gotClaimed = info.Route(), info.Kind(), info.ClaimedClientID()
			b, _ := io.ReadAll(r.Body)
			body = string(b)
		}))
	})
	res, err := http.Post(ts.URL+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=client_credentials&client_id=svc"))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if gotRoute != "/oauth2/token" || gotKind != "oauth-endpoint" || gotClaimed != "svc" || got.IP.String() != "127.0.0.1" || got.ID == "" {
		t.Fatalf("facts: route %q kind %q claimed %q ip %v id %q", gotRoute, gotKind, gotClaimed, got.IP, got.ID)
	}
	if body != "grant_type=client_credentials&client_id=svc" {
		t.Fatalf("handler saw body %q", body)
	}
	if res.Header.Get("X-Request-Id") != got.ID {
		t.Fatalf("X-Request-Id %q, want %q", res.Header.Get("X-Request-Id"), got.ID)
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
