package admin

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

func webClient(name string) map[string]any {
	return map[string]any{
		"client_name":   name,
		"redirect_uris": []string{"https://app.example/cb"},
		"grant_types":   []string{"authorization_code", "refresh_token"},
		"scope":         "openid read",
	}
}

func TestClientLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// Create: server-generated id and secret, returned once, stored hashed.
		r := e.do("clients", http.MethodPost, "/clients", webClient("Shop"))
		m := expect(t, r, http.StatusCreated, "")
		id, _ := m["client_id"].(string)
		secret, _ := m["client_secret"].(string)
		if id == "" || len(secret) < 40 {
			t.Fatalf("create: id %q secret length %d", id, len(secret))
		}
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("ETag") != `"1"` {
			t.Errorf("create headers: Cache-Control %q ETag %q", r.header.Get("Cache-Control"), r.header.Get("ETag"))
		}
		if m["token_endpoint_auth_method"] != "client_secret_basic" || m["owner"] != "apikey:"+e.ids["clients"] {
			t.Errorf("defaults/owner: %s", r.body)
		}
		stored, err := e.store.ClientByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stored.SecretHash, "$argon2id$") || strings.Contains(stored.SecretHash, secret) {
			t.Fatalf("secret not stored as Argon2id: %q", stored.SecretHash)
		}
		if err := e.hasher.Compare(ctx, []byte(stored.SecretHash), []byte(secret)); err != nil {
			t.Fatalf("returned secret does not verify: %v", err)
		}

		// Get: ETag, no secret.
		r = e.do("clients-read", http.MethodGet, "/clients/"+id, nil)
		m = expect(t, r, http.StatusOK, "")
		etag := r.header.Get("ETag")
		if etag != `"1"` || m["client_secret"] != nil || strings.Contains(string(r.body), "argon2") {
			t.Fatalf("get: ETag %q body %s", etag, r.body)
		}

		// Update with If-Match, then stale and missing If-Match.
		upd := webClient("Shop v2")
		upd["redirect_uris"] = []string{"https://app.example/cb2"}
		r = e.do("clients", http.MethodPut, "/clients/"+id, upd, "If-Match", etag)
		m = expect(t, r, http.StatusOK, "")
		if m["client_name"] != "Shop v2" || r.header.Get("ETag") != `"2"` || m["client_secret"] != nil {
			t.Fatalf("update: ETag %q body %s", r.header.Get("ETag"), r.body)
		}
		expect(t, e.do("clients", http.MethodPut, "/clients/"+id, upd, "If-Match", etag), http.StatusPreconditionFailed, "precondition_failed")
		expect(t, e.do("clients", http.MethodPut, "/clients/"+id, upd), http.StatusPreconditionRequired, "precondition_required")
		expect(t, e.do("clients", http.MethodPut, "/clients/"+id, upd, "If-Match", `W/"2"`), http.StatusPreconditionFailed, "precondition_failed")
		expect(t, e.do("clients", http.MethodPut, "/clients/nope", upd, "If-Match", `"1"`), http.StatusNotFound, "not_found")
		if c, _ := e.store.ClientByID(ctx, id); c.SecretHash != stored.SecretHash {
			t.Error("update changed the secret")
		}

		// Rotate the secret: new one returned once, old one kept for the overlap.
		r = e.do("clients", http.MethodPost, "/clients/"+id+"/secret", nil)
		m = expect(t, r, http.StatusOK, "")
		secret2, _ := m["client_secret"].(string)
		if secret2 == "" || secret2 == secret || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("rotate: %s", r.body)
		}
		rot, _ := e.store.ClientByID(ctx, id)
		if err := e.hasher.Compare(ctx, rot.GetHashedSecret(), []byte(secret2)); err != nil {
			t.Fatalf("new secret does not verify: %v", err)
		}
		old := rot.GetRotatedHashes()
		if len(old) != 1 || e.hasher.Compare(ctx, old[0], []byte(secret)) != nil {
			t.Fatalf("old secret not kept for the overlap: %d rotated hashes", len(old))
		}

		// List, paginated and filtered.
		for _, n := range []string{"Alpha", "Beta", "Gamma"} {
			expect(t, e.do("clients", http.MethodPost, "/clients", webClient(n)), http.StatusCreated, "")
		}
		m = expect(t, e.do("clients-read", http.MethodGet, "/clients?limit=2", nil), http.StatusOK, "")
		items := m["items"].([]any)
		next, _ := m["next_after"].(string)
		if len(items) != 2 || next == "" {
			t.Fatalf("page 1: %v", m)
		}
		m = expect(t, e.do("clients-read", http.MethodGet, "/clients?limit=2&after="+next, nil), http.StatusOK, "")
		if got := len(m["items"].([]any)); got != 2 {
			t.Fatalf("page 2: %d items", got)
		}
		m = expect(t, e.do("clients-read", http.MethodGet, "/clients?name=amm", nil), http.StatusOK, "")
		if items := m["items"].([]any); len(items) != 1 || items[0].(map[string]any)["client_name"] != "Gamma" {
			t.Fatalf("name filter: %v", m)
		}
		expect(t, e.do("clients-read", http.MethodGet, "/clients?limit=0", nil), http.StatusBadRequest, "invalid_request")

		// Disable: tokens revoked in the same call; enable.
		e.issueTokens("t1", id, "alice")
		e.issueTokens("t2", id, "bob")
		if !e.tokenLive("t1") {
			t.Fatal("setup: token not stored")
		}
		m = expect(t, e.do("clients", http.MethodPost, "/clients/"+id+"/disable", nil), http.StatusOK, "")
		if m["tokens_revoked"] != float64(4) || m["client"].(map[string]any)["disabled"] != true {
			t.Fatalf("disable: %v", m)
		}
		if e.tokenLive("t1") || e.tokenLive("t2") {
			t.Fatal("tokens survived disable")
		}
		if _, err := e.store.GetRefreshTokenSession(ctx, "t1-rt", storage.NewSession("")); err == nil {
			t.Fatal("refresh token still active after disable")
		}
		if len(e.evicts.hashes) == 0 {
			t.Error("disable did not evict cached secret verifications")
		}
		m = expect(t, e.do("clients", http.MethodPost, "/clients/"+id+"/enable", nil), http.StatusOK, "")
		if m["disabled"] != false {
			t.Fatalf("enable: %v", m)
		}

		// Delete.
		expect(t, e.do("clients", http.MethodDelete, "/clients/"+id, nil), http.StatusNoContent, "")
		expect(t, e.do("clients-read", http.MethodGet, "/clients/"+id, nil), http.StatusNotFound, "not_found")
		expect(t, e.do("clients", http.MethodDelete, "/clients/"+id, nil), http.StatusNotFound, "not_found")

		// Audit trail: every mutation, by this key, never the secrets.
		for _, ev := range []string{"client.created", "client.updated", "client.secret_rotated", "client.disabled", "client.enabled", "client.deleted"} {
			evs := e.auditEvents(ev)
			if len(evs) == 0 {
				t.Errorf("no %s audit event", ev)
				continue
			}
			if evs[0].Actor != "apikey:"+e.ids["clients"] {
				t.Errorf("%s actor %q", ev, evs[0].Actor)
			}
		}
		if d := e.auditEvents("client.disabled")[0].Details["tokens_revoked"]; d != "4" {
			t.Errorf("client.disabled tokens_revoked %q", d)
		}
		all := e.auditEvents("")
		for _, ev := range all {
			for _, v := range ev.Details {
				if strings.Contains(v, secret) || strings.Contains(v, secret2) {
					t.Fatalf("secret in audit event %s", ev.Event)
				}
			}
		}
	})
}

func TestClientPublicAndSecretMethods(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	ctx := context.Background()
	pub := webClient("SPA")
	pub["token_endpoint_auth_method"] = "none"
	pub["client_id"] = "spa"
	m := expect(t, e.do("clients", http.MethodPost, "/clients", pub), http.StatusCreated, "")
	if m["client_secret"] != nil || m["client_id"] != "spa" {
		t.Fatalf("public client: %v", m)
	}
	expect(t, e.do("clients", http.MethodPost, "/clients/spa/secret", nil), http.StatusConflict, "conflict")
	expect(t, e.do("clients", http.MethodPost, "/clients", pub), http.StatusConflict, "conflict")

	// Switching to a secret method generates a secret; switching back drops it.
	sec := webClient("SPA")
	r := e.do("clients", http.MethodPut, "/clients/spa", sec, "If-Match", `"1"`)
	m = expect(t, r, http.StatusOK, "")
	s, _ := m["client_secret"].(string)
	if s == "" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("switch to secret: %s", r.body)
	}
	c, _ := e.store.ClientByID(ctx, "spa")
	if e.hasher.Compare(ctx, c.GetHashedSecret(), []byte(s)) != nil {
		t.Fatal("generated secret does not verify")
	}
	pub2 := webClient("SPA")
	pub2["token_endpoint_auth_method"] = "none"
	expect(t, e.do("clients", http.MethodPut, "/clients/spa", pub2, "If-Match", `"2"`), http.StatusOK, "")
	if c, _ := e.store.ClientByID(ctx, "spa"); c.SecretHash != "" || len(c.RotatedSecrets) != 0 {
		t.Fatal("secret kept after switching to none")
	}
	if len(e.evicts.hashes) == 0 {
		t.Error("dropped secret not evicted")
	}
}

func TestClientValidationAndMassAssignment(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	with := func(k string, v any) map[string]any {
		c := webClient("X")
		c[k] = v
		return c
	}
	cases := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"case=client_secret", with("client_secret", "chosen-by-attacker"), "client_secret"},
		{"case=created_at", with("created_at", "2020-01-01T00:00:00Z"), "created_at"},
		{"case=updated_at", with("updated_at", "2020-01-01T00:00:00Z"), "updated_at"},
		{"case=version", with("version", 9), "version"},
		{"case=owner", with("owner", "someone"), "owner"},
		{"case=disabled", with("disabled", false), "disabled"},
		{"case=secret_hash", with("client_secret_hash", "$argon2id$..."), "client_secret_hash"},
		{"case=http-redirect", with("redirect_uris", []string{"http://app.example/cb"}), "redirect_uris[0]"},
		{"case=fragment", with("redirect_uris", []string{"https://app.example/cb#x"}), "redirect_uris[0]"},
		{"case=logo-http", with("logo_uri", "http://app.example/logo.png"), "logo_uri"},
		{"case=client-uri-js", with("client_uri", "javascript:alert(1)"), "client_uri"},
		{"case=implicit", with("grant_types", []string{"implicit"}), "grant_types"},
		{"case=unknown-scope", with("scope", "openid admin"), "scope"},
		{"case=bad-auth-method", with("token_endpoint_auth_method", "tls_client_auth"), "token_endpoint_auth_method"},
		{"case=negative-lifespan", with("access_token_lifespan", -5), "access_token_lifespan"},
		{"case=bad-client-id", with("client_id", "a b"), "client_id"},
		{"case=pkjwt-without-jwks", with("token_endpoint_auth_method", "private_key_jwt"), "jwks"},
		{"case=id-token-alg-unknown", with("id_token_signed_response_alg", "HS256"), "id_token_signed_response_alg"},
		// The test ring keeps ES256 and EdDSA keys only.
		{"case=id-token-alg-without-key", with("id_token_signed_response_alg", "RS256"), "id_token_signed_response_alg"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := expect(t, e.do("clients", http.MethodPost, "/clients", c.body), http.StatusBadRequest, "invalid_client_metadata")
			if !hasField(m, c.field) {
				t.Fatalf("400 does not name %s: %v", c.field, m)
			}
		})
	}
	if evs := e.auditEvents("client.created"); len(evs) != 0 {
		t.Fatal("a refused client was created")
	}
	// An algorithm the ring signs with is kept and returned.
	m := expect(t, e.do("clients", http.MethodPost, "/clients", with("id_token_signed_response_alg", "EdDSA")), http.StatusCreated, "")
	if m["id_token_signed_response_alg"] != "EdDSA" {
		t.Fatalf("id_token_signed_response_alg not returned: %v", m)
	}
	// On update, client_id is server-controlled too (and so is everything above).
	m = expect(t, e.do("clients", http.MethodPost, "/clients", webClient("Y")), http.StatusCreated, "")
	id := m["client_id"].(string)
	for _, k := range []string{"client_id", "client_secret", "created_at", "owner"} {
		m := expect(t, e.do("clients", http.MethodPut, "/clients/"+id, with(k, "changed-"+id), "If-Match", `"1"`), http.StatusBadRequest, "invalid_client_metadata")
		if !hasField(m, k) {
			t.Errorf("PUT with %s: %v", k, m)
		}
	}
	// Validation on PUT leaves the client untouched.
	expect(t, e.do("clients", http.MethodPut, "/clients/"+id, with("logo_uri", "http://x.example"), "If-Match", `"1"`), http.StatusBadRequest, "invalid_client_metadata")
	if r := e.do("clients-read", http.MethodGet, "/clients/"+id, nil); r.header.Get("ETag") != `"1"` {
		t.Fatalf("refused update changed the client: %s", r.header.Get("ETag"))
	}
}
