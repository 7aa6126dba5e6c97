package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/storage/memory"
)

// samplePath fills the path variables of a route template.
func samplePath(tpl string) string {
	r := strings.NewReplacer("{id}", "x1", "{client_id}", "c1", "{kid}", "k1", "{kind}", "ip", "{value}", "192.0.2.1")
	return r.Replace(tpl)
}

type specOp struct {
	Scope string `json:"x-required-scope"`
}

func loadSpec(t *testing.T) map[string]map[string]json.RawMessage {
	t.Helper()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	return doc.Paths
}

// The router and the OpenAPI document describe the same API: every route
// has a spec entry and every spec entry has a route, and the scope the
// document advertises is the one the route enforces.
func TestOpenAPIMatchesRouter(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	r := mux.NewRouter()
	NewAPI(e.svc, nil).Register(r)

	routes := map[string]bool{}
	err := r.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := rt.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, err := rt.GetMethods()
		if err != nil {
			return nil // the prefix subrouter itself
		}
		for _, m := range methods {
			routes[strings.ToLower(m)+" "+strings.TrimPrefix(tpl, Prefix)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := map[string]bool{}
	for path, ops := range loadSpec(t) {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			spec[m+" "+path] = true
		}
	}
	var missing, extra []string
	for k := range routes {
		if !spec[k] {
			missing = append(missing, k)
		}
	}
	for k := range spec {
		if !routes[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("routes without a spec entry: %v; spec entries without a route: %v", missing, extra)
	}
	if len(routes) < 29 {
		t.Fatalf("walked only %d routes", len(routes))
	}

	paths := loadSpec(t)
	for _, rt := range NewAPI(e.svc, nil).routes() {
		var op specOp
		if err := json.Unmarshal(paths[rt.path][strings.ToLower(rt.method)], &op); err != nil {
			t.Fatalf("%s %s: %v", rt.method, rt.path, err)
		}
		want := rt.scope
		if want == ScopeAny {
			want = "any authenticated API key"
		}
		if op.Scope != want {
			t.Errorf("%s %s: spec says scope %q, route enforces %q", rt.method, rt.path, op.Scope, want)
		}
	}
}

// Every route: 401 without a key and with a bad one; 403 insufficient_scope
// with a valid key lacking the route's scope, and never the handler's work.
func TestEveryRouteAuthorization(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	for _, rt := range NewAPI(e.svc, nil).routes() {
		path := samplePath(rt.path)
		t.Run("route="+rt.method+" "+rt.path, func(t *testing.T) {
			r := e.do("", rt.method, path, nil)
			expect(t, r, http.StatusUnauthorized, "")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			expect(t, e.do("bwk_notavalidkeyatall", rt.method, path, nil), http.StatusUnauthorized, "")
			// A well-formed but unknown key.
			forged := e.tokens["none"][:len(e.tokens["none"])-4] + "AAAA"
			expect(t, e.do(forged, rt.method, path, nil), http.StatusUnauthorized, "")
			if rt.scope == ScopeAny {
				return
			}
			for label, scopes := range keyScopes {
				if slices.Contains(scopes, rt.scope) {
					continue
				}
				r := e.do(label, rt.method, path, nil)
				m := expect(t, r, http.StatusForbidden, "insufficient_scope")
				if !strings.Contains(m["error_description"].(string), rt.scope) {
					t.Errorf("403 does not name the scope: %s", r.body)
				}
			}
		})
	}
	// Only the set-up (ring bootstrap, key creation) wrote events: no
	// refused request did any work.
	for _, ev := range e.auditEvents("") {
		if !strings.HasPrefix(ev.Event, "signing_key.") && ev.Event != "apikey.create" {
			t.Errorf("a refused request left an audit event %q", ev.Event)
		}
	}
}

// Bodies: wrong media type is 415, garbage is 400, and every error body has
// the same shape.
func TestBodyHandling(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	cases := []struct {
		name, body, ctype string
		status            int
	}{
		{"case=text-plain", `{"client_name":"x"}`, "text/plain", http.StatusUnsupportedMediaType},
		{"case=no-content-type", `{"client_name":"x"}`, "-", http.StatusUnsupportedMediaType},
		{"case=not-json", `{"client_name":`, "application/json", http.StatusBadRequest},
		{"case=array", `[1]`, "application/json", http.StatusBadRequest},
		{"case=two-objects", `{} {}`, "application/json", http.StatusBadRequest},
		{"case=wrong-type", `{"redirect_uris":"https://a.example/cb"}`, "application/json", http.StatusBadRequest},
		{"case=unknown-field", `{"colour":"red"}`, "application/json", http.StatusBadRequest},
		{"case=empty", ``, "application/json", http.StatusBadRequest},
		{"case=too-large", `{"client_name":"` + strings.Repeat("a", maxBody) + `"}`, "application/json", http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct := c.ctype
			if ct == "-" {
				ct = ""
			}
			r := e.do("clients", http.MethodPost, "/clients", c.body, "Content-Type", ct)
			m := expect(t, r, c.status, "")
			if m["error"] == "" || m["error_description"] == "" {
				t.Fatalf("error body lacks error/error_description: %s", r.body)
			}
			if r.header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
		})
	}
	m := expect(t, e.do("clients", http.MethodPost, "/clients", `{"colour":"red"}`), http.StatusBadRequest, "invalid_client_metadata")
	if !hasField(m, "colour") {
		t.Errorf("unknown field not named: %v", m)
	}
	m = expect(t, e.do("clients", http.MethodPost, "/clients", `{"redirect_uris":"x"}`), http.StatusBadRequest, "")
	if !hasField(m, "redirect_uris") {
		t.Errorf("mistyped field not named: %v", m)
	}
	// Action endpoints take no body, or an empty object.
	expect(t, e.do("clients", http.MethodPost, "/clients/none/disable", `{"force":true}`), http.StatusBadRequest, "invalid_request")
	expect(t, e.do("clients", http.MethodPost, "/clients/none/disable", `{}`), http.StatusNotFound, "not_found")
}
