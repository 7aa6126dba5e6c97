package admin

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// status sends one request and returns its status (0 on a transport
// error, which the caller counts as a failure); safe on any goroutine.
func (e *env) status(label, method, path, body string, headers ...string) int {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+Prefix+path, rd)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens[label])
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

// Writes released together on Postgres: exactly one wins, the others get
// a clean 4xx, nobody a 5xx. Each is decided by one conditional statement
// (UPDATE … WHERE version, DELETE), not by the read before it.
func TestConcurrentWritesOneWinner(t *testing.T) {
	const n = 8
	e := newEnv(t, backends[1].open(t))
	ctx := context.Background()
	is := func(code int) func(int) bool { return func(s int) bool { return s == code } }
	check := func(name string, got []int, win, lose int) {
		t.Helper()
		if storagetest.Count(got, is(win)) != 1 || storagetest.Count(got, is(lose)) != n-1 {
			t.Errorf("%s: %v, want one %d and %d × %d", name, got, win, n-1, lose)
		}
	}

	c := expect(t, e.do("clients", http.MethodPost, "/clients", webClient("Race")), http.StatusCreated, "")
	cid := c["client_id"].(string)
	got := storagetest.Together(n, func(i int) int {
		return e.status("clients", http.MethodPatch, "/clients/"+cid, `{"client_name":"racer `+string(rune('a'+i))+`"}`,
			"Content-Type", "application/merge-patch+json", "If-Match", `"1"`)
	})
	check("client PATCH", got, http.StatusOK, http.StatusPreconditionFailed)

	u := expect(t, e.do("users", http.MethodPost, "/users", map[string]any{"username": "racer"}), http.StatusCreated, "")
	uid := u["id"].(string)
	got = storagetest.Together(n, func(i int) int {
		return e.status("users", http.MethodPut, "/users/"+uid, `{"username":"racer","email":"r`+string(rune('a'+i))+`@example.com"}`, "If-Match", `"1"`)
	})
	check("user PUT", got, http.StatusOK, http.StatusPreconditionFailed)

	const pw = "the racer's password"
	o := expect(t, e.do("users", http.MethodPost, "/users", map[string]any{"username": "owner", "password": pw}), http.StatusCreated, "")
	e.userKey("owner", o["id"].(string), apikeys.ScopeIntrospect)
	got = storagetest.Together(n, func(i int) int {
		return e.status("owner", http.MethodPost, "/users/self/password",
			`{"current_password":"`+pw+`","new_password":"new password number `+string(rune('a'+i))+`"}`)
	})
	check("self password", got, http.StatusOK, http.StatusForbidden)

	got = storagetest.Together(n, func(int) int { return e.status("users", http.MethodDelete, "/users/"+uid, "") })
	check("user DELETE", got, http.StatusOK, http.StatusNotFound)
	if _, err := e.store.UserByID(ctx, uid); err == nil {
		t.Error("user still there")
	}
}
