package admin

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// A known path with a method it does not serve is 405 with Allow naming
// the methods it does (RFC 9110 §15.5.6), for every route; never 404.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	e := newEnv(t, newMemory())
	allow := map[string][]string{"/openapi.json": {http.MethodGet}}
	var paths []string
	for _, rt := range NewAPI(e.svc, nil).routes() {
		if _, ok := allow[rt.path]; !ok {
			paths = append(paths, rt.path)
		}
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	paths = append(paths, "/openapi.json")
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	n := 0
	for _, p := range paths {
		for _, m := range methods {
			if slices.Contains(allow[p], m) {
				continue
			}
			n++
			t.Run("case="+m+" "+p, func(t *testing.T) {
				r := e.do("root", m, samplePath(p), nil)
				expect(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
				got := strings.Split(r.header.Get("Allow"), ", ")
				want := slices.Clone(allow[p])
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("Allow %q, want %v", r.header.Get("Allow"), want)
				}
			})
		}
	}
	if n < 60 {
		t.Fatalf("only %d wrong-method cases", n)
	}
	// Unknown paths stay 404.
	if r := e.do("root", http.MethodGet, "/nothing-here", nil); r.status != http.StatusNotFound {
		t.Fatalf("unknown path: %d", r.status)
	}
}

// A route's missing scope is named in error_description and in the
// WWW-Authenticate scope parameter (RFC 6750 §3.1).
func TestInsufficientScopeNamesScope(t *testing.T) {
	e := newEnv(t, newMemory())
	for _, rt := range NewAPI(e.svc, nil).routes() {
		if rt.scope == ScopeAny {
			continue
		}
		r := e.do("none", rt.method, samplePath(rt.path), nil)
		m := expect(t, r, http.StatusForbidden, "insufficient_scope")
		if !strings.Contains(m["error_description"].(string), rt.scope) ||
			r.header.Get("WWW-Authenticate") != `Bearer error="insufficient_scope", scope="`+rt.scope+`"` {
			t.Errorf("%s %s: %s / %q", rt.method, rt.path, r.body, r.header.Get("WWW-Authenticate"))
		}
	}
}
