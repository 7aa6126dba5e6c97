package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/server/apikeyauth"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

func TestAPIKeyLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		// Create: token returned once, works at once.
		r := e.do("apikeys-only", http.MethodPost, "/apikeys", map[string]any{
			"name": "ci", "owner_type": "service", "owner_id": "ci", "scopes": []string{"introspect"},
		})
		m := expect(t, r, http.StatusCreated, "")
		tok, _ := m["token"].(string)
		id, _ := m["id"].(string)
		if !strings.HasPrefix(tok, "bwk_") || id == "" || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("create: %s", r.body)
		}
		m = expect(t, e.do(tok, http.MethodGet, "/apikeys/self", nil), http.StatusOK, "")
		if m["id"] != id || m["token"] != nil {
			t.Fatalf("self: %v", m)
		}
		// A key without admin:apikeys sees only itself.
		expect(t, e.do(tok, http.MethodGet, "/apikeys/"+id, nil), http.StatusForbidden, "insufficient_scope")

		// Escalation: scopes the caller lacks.
		expect(t, e.do("apikeys-only", http.MethodPost, "/apikeys", map[string]any{
			"name": "x", "owner_type": "service", "owner_id": "x", "scopes": []string{"admin:keys"},
		}), http.StatusForbidden, "insufficient_scope")
		// Validation, mass assignment.
		m = expect(t, e.do("apikeys", http.MethodPost, "/apikeys", map[string]any{"name": "", "owner_type": "robot", "owner_id": "x", "scopes": []string{"admin:apikeys"}}), http.StatusBadRequest, "invalid_request")
		if !hasField(m, "name") || !hasField(m, "owner_type") {
			t.Fatalf("validation: %v", m)
		}
		m = expect(t, e.do("apikeys", http.MethodPost, "/apikeys", map[string]any{"name": "y", "owner_type": "service", "owner_id": "y", "scopes": []string{"admin:apikeys"}, "status": "active", "token": "bwk_x"}), http.StatusBadRequest, "invalid_request")
		if !hasField(m, "status") || !hasField(m, "token") {
			t.Fatalf("mass assignment: %v", m)
		}

		// Get with ETag, list.
		r = e.do("apikeys", http.MethodGet, "/apikeys/"+id, nil)
		expect(t, r, http.StatusOK, "")
		if r.header.Get("ETag") == "" {
			t.Error("no ETag on GET /apikeys/{id}")
		}
		m = expect(t, e.do("apikeys", http.MethodGet, "/apikeys?limit=200", nil), http.StatusOK, "")
		if n := len(m["items"].([]any)); n != len(keyScopes)+1 {
			t.Fatalf("list: %d keys", n)
		}
		if strings.Contains(fmt.Sprint(m), "argon2") {
			t.Fatal("list leaks hashes")
		}

		// Rotation: needs every scope of the key; the successor works.
		expect(t, e.do("apikeys", http.MethodPost, "/apikeys/"+id+"/rotate", nil), http.StatusForbidden, "insufficient_scope")
		m = expect(t, e.do("apikeys-only", http.MethodPost, "/apikeys/"+id+"/rotate", nil), http.StatusOK, "")
		tok2, _ := m["token"].(string)
		id2, _ := m["id"].(string)
		if tok2 == "" || id2 == id {
			t.Fatalf("rotate: %v", m)
		}
		expect(t, e.do(tok2, http.MethodGet, "/apikeys/self", nil), http.StatusOK, "")

		// Revoke by an admin: the token stops working at once.
		m = expect(t, e.do("apikeys", http.MethodPost, "/apikeys/"+id2+"/revoke", nil), http.StatusOK, "")
		if m["status"] != "revoked" {
			t.Fatalf("revoke: %v", m)
		}
		expect(t, e.do(tok2, http.MethodGet, "/apikeys/self", nil), http.StatusUnauthorized, "")
		expect(t, e.do("apikeys", http.MethodPost, "/apikeys/nope/revoke", nil), http.StatusNotFound, "not_found")

		// Self-revocation: any key can kill itself.
		m = expect(t, e.do("none", http.MethodPost, "/apikeys/self/revoke", nil), http.StatusOK, "")
		if m["id"] != e.ids["none"] || m["status"] != "revoked" {
			t.Fatalf("self revoke: %v", m)
		}
		expect(t, e.do("none", http.MethodGet, "/apikeys/self", nil), http.StatusUnauthorized, "")

		for _, ev := range []string{"apikey.create", "apikey.rotate", "apikey.revoke"} {
			found := false
			for _, x := range e.auditEvents(ev) {
				found = found || strings.HasPrefix(x.Actor, "apikey:")
			}
			if !found {
				t.Errorf("no %s audit event by an API key", ev)
			}
		}
	})
}

func TestSigningKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		active := func() map[string]string {
			t.Helper()
			m := expect(t, e.do("keys", http.MethodGet, "/keys", nil), http.StatusOK, "")
			out := map[string]string{}
			for _, it := range m["items"].([]any) {
				k := it.(map[string]any)
				for _, f := range []string{"d", "p", "q", "sealed_private", "public_jwk", "x", "y"} {
					if _, ok := k[f]; ok {
						t.Fatalf("key material field %q in listing", f)
					}
				}
				if k["state"] == "active" {
					out[k["alg"].(string)] = k["kid"].(string)
				}
			}
			return out
		}
		before := active()
		if before["ES256"] == "" || before["EdDSA"] == "" {
			t.Fatalf("bootstrap: %v", before)
		}
		expect(t, e.do("keys", http.MethodPost, "/keys/rotate", map[string]any{"alg": "ES256"}), http.StatusOK, "")
		after := active()
		if after["ES256"] == before["ES256"] || after["EdDSA"] != before["EdDSA"] {
			t.Fatalf("rotate ES256: before %v after %v", before, after)
		}
		m := expect(t, e.do("keys", http.MethodPost, "/keys/rotate", map[string]any{"alg": "HS256"}), http.StatusBadRequest, "invalid_request")
		if !hasField(m, "alg") {
			t.Fatalf("bad alg: %v", m)
		}
		expect(t, e.do("keys", http.MethodPost, "/keys/rotate", map[string]any{"alg": "ES256", "kid": "mine"}), http.StatusBadRequest, "invalid_request")

		m = expect(t, e.do("keys", http.MethodPost, "/keys/"+after["EdDSA"]+"/revoke", nil), http.StatusOK, "")
		revoked := false
		for _, it := range m["items"].([]any) {
			k := it.(map[string]any)
			revoked = revoked || (k["kid"] == after["EdDSA"] && k["state"] == "revoked")
		}
		if !revoked || active()["EdDSA"] == after["EdDSA"] || active()["EdDSA"] == "" {
			t.Fatalf("revoke: %v", m)
		}
		if _, ok := e.ring.VerificationKey(after["EdDSA"]); ok {
			t.Error("revoked key still verifies in the ring")
		}
		expect(t, e.do("keys", http.MethodPost, "/keys/unknown-kid/revoke", nil), http.StatusNotFound, "not_found")
		if len(e.auditEvents("signing_key.rotated")) != 1 || len(e.auditEvents("signing_key.revoked")) == 0 {
			t.Error("signing key audit events missing")
		}
	})
}

func TestAuditAndBlocks(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		expect(t, e.do("clients", http.MethodPost, "/clients", map[string]any{"client_id": "a1", "redirect_uris": []string{"https://a.example/cb"}}), http.StatusCreated, "")
		expect(t, e.do("clients", http.MethodPost, "/clients/a1/disable", nil), http.StatusOK, "")

		m := expect(t, e.do("audit", http.MethodGet, "/audit?event=client.disabled&client_id=a1", nil), http.StatusOK, "")
		items := m["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["actor"] != "apikey:"+e.ids["clients"] {
			t.Fatalf("audit filter: %v", m)
		}
		m = expect(t, e.do("audit", http.MethodGet, "/audit?actor=apikey:"+e.ids["clients"]+"&limit=1", nil), http.StatusOK, "")
		items = m["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["event"] != "client.disabled" || m["next_before_id"] == nil {
			t.Fatalf("audit newest first: %v", m)
		}
		m = expect(t, e.do("audit", http.MethodGet, fmt.Sprintf("/audit?actor=apikey:%s&before_id=%.0f", e.ids["clients"], m["next_before_id"]), nil), http.StatusOK, "")
		if items := m["items"].([]any); len(items) != 1 || items[0].(map[string]any)["event"] != "client.created" {
			t.Fatalf("audit paging: %v", m)
		}
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		m = expect(t, e.do("audit", http.MethodGet, "/audit?since="+future, nil), http.StatusOK, "")
		if len(m["items"].([]any)) != 0 {
			t.Fatalf("since: %v", m)
		}
		m = expect(t, e.do("audit", http.MethodGet, "/audit?since=yesterday&before_id=-1&limit=9999", nil), http.StatusBadRequest, "invalid_request")
		for _, f := range []string{"since", "before_id", "limit"} {
			if !hasField(m, f) {
				t.Errorf("audit query error does not name %s: %v", f, m)
			}
		}

		now := time.Now().UTC().Truncate(time.Second)
		if err := e.store.PutBlock(ctx, &storage.Block{Kind: "ip", Value: "192.0.2.7", Reason: "credential stuffing", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		m = expect(t, e.do("audit", http.MethodGet, "/blocks", nil), http.StatusOK, "")
		if items := m["items"].([]any); len(items) != 1 || items[0].(map[string]any)["value"] != "192.0.2.7" {
			t.Fatalf("blocks: %v", m)
		}
		expect(t, e.do("audit", http.MethodDelete, "/blocks/ip/192.0.2.7", nil), http.StatusForbidden, "insufficient_scope")
		expect(t, e.do("users", http.MethodDelete, "/blocks/ip/192.0.2.7", nil), http.StatusNoContent, "")
		expect(t, e.do("users", http.MethodDelete, "/blocks/ip/192.0.2.7", nil), http.StatusNotFound, "not_found")
		expect(t, e.do("users", http.MethodDelete, "/blocks/planet/mars", nil), http.StatusBadRequest, "invalid_request")
		if evs := e.auditEvents("block.lifted"); len(evs) != 1 || evs[0].Actor != "apikey:"+e.ids["users"] {
			t.Fatalf("block.lifted audit: %v", evs)
		}
	})
}

// failingStore fails client listing with err.
type failingStore struct {
	storage.Store
	err error
}

func (f failingStore) ListClients(context.Context, storage.ListOptions) ([]*storage.Client, error) {
	return nil, f.err
}

func TestStorageFailures(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter bool
	}{
		{"case=unavailable", fmt.Errorf("postgres: list clients: %w", storage.ErrUnavailable), http.StatusServiceUnavailable, "temporarily_unavailable", true},
		{"case=unexpected", errors.New("postgres: list clients: syntax error at or near SECRET-LOOKING-DETAIL"), http.StatusInternalServerError, "server_error", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, memory.New(memory.Config{}))
			e.svc.store = failingStore{Store: e.store, err: c.err}
			r := e.do("clients-read", http.MethodGet, "/clients", nil)
			expect(t, r, c.status, c.code)
			if (r.header.Get("Retry-After") != "") != c.retryAfter {
				t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
			}
			if strings.Contains(string(r.body), "SECRET-LOOKING-DETAIL") || strings.Contains(string(r.body), "goroutine") {
				t.Errorf("error detail leaked: %s", r.body)
			}
		})
	}
}

// A miswired router (no authentication middleware) fails closed.
func TestNoMiddlewareFailsClosed(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	r := mux.NewRouter()
	NewAPI(e.svc, nil).Register(r)
	req, _ := http.NewRequest(http.MethodGet, Prefix+"/clients", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens["root"])
	w := newRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status %d", w.Code)
	}
	// A principal put in the context by other middleware is honoured.
	r = mux.NewRouter()
	NewAPI(e.svc, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _, err := e.keys.Verify(r.Context(), e.tokens["clients-read"])
			if err != nil {
				t.Error(err)
			}
			next.ServeHTTP(w, r.WithContext(apikeyauth.WithPrincipal(r.Context(), p)))
		})
	}).Register(r)
	w = newRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
}

// API key periods are Go durations like client lifespans; seconds are
// still read for compatibility.
func TestAPIKeyPeriodsAreDurations(t *testing.T) {
	e := newEnv(t, newMemory())
	body := func(period any) map[string]any {
		return map[string]any{"name": "p", "owner_type": "service", "owner_id": "p", "scopes": []string{"introspect"}, "rotation_period": period, "grace_period": "1h"}
	}
	m := expect(t, e.do("root", http.MethodPost, "/apikeys", body("2160h")), http.StatusCreated, "")
	if m["rotation_period"] != "2160h0m0s" || m["grace_period"] != "1h0m0s" {
		t.Fatalf("periods: %v / %v", m["rotation_period"], m["grace_period"])
	}
	m = expect(t, e.do("root", http.MethodPost, "/apikeys", body(7200)), http.StatusCreated, "")
	if m["rotation_period"] != "2h0m0s" {
		t.Fatalf("seconds: %v", m["rotation_period"])
	}
	for _, bad := range []any{"soon", "-1h", 1.5} {
		if m := expect(t, e.do("root", http.MethodPost, "/apikeys", body(bad)), http.StatusBadRequest, "invalid_request"); !hasField(m, "rotation_period") {
			t.Errorf("%v: %v", bad, m)
		}
	}
}
