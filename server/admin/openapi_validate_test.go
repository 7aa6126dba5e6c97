package admin

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// validating is a client transport that checks every response of the
// real server against the OpenAPI document (kin-openapi, an independent
// implementation), and records which operations answered 2xx.
type validating struct {
	t      *testing.T
	base   http.RoundTripper
	router routers.Router
	mu     sync.Mutex
	ok     map[string]bool // operationId → answered 2xx
}

func (v *validating) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := v.base.RoundTrip(req)
	if err != nil {
		return res, err
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		if res.StatusCode != http.StatusMethodNotAllowed {
			v.t.Errorf("%s %s: not in the document: %v", req.Method, req.URL.Path, err)
		}
		return res, nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: res.StatusCode, Header: res.Header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		v.t.Errorf("%s %s → %d does not match the document: %v\n%s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
	if res.StatusCode < 300 {
		v.mu.Lock()
		v.ok[route.Operation.OperationID] = true
		v.mu.Unlock()
	}
	return res, nil
}

// Every operation of the document, driven over real HTTP against a real
// Postgres, answers what the document says: each 2xx at least once, and
// the errors along the way too.
func TestResponsesMatchOpenAPI(t *testing.T) {
	e := newEnv(t, backends[1].open(t))
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("document invalid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: e.srv.URL + Prefix}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	client := e.srv.Client()
	v := &validating{t: t, base: client.Transport, router: router, ok: map[string]bool{}}
	client.Transport = v
	t.Cleanup(func() { client.Transport = v.base })
	mp := "application/merge-patch+json"

	expect(t, e.do("", http.MethodGet, "/openapi.json", nil), http.StatusOK, "")

	// Clients.
	c := expect(t, e.do("root", http.MethodPost, "/clients", webClient("Doc")), http.StatusCreated, "")
	cid := c["client_id"].(string)
	expect(t, e.do("root", http.MethodGet, "/clients?limit=1", nil), http.StatusOK, "")
	got := expect(t, e.do("root", http.MethodGet, "/clients/"+cid, nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPut, "/clients/"+cid, got, "If-Match", `"1"`), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPatch, "/clients/"+cid, `{"access_token_lifespan":"5m"}`, "Content-Type", mp, "If-Match", `"2"`), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPost, "/clients/"+cid+"/secret", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPost, "/clients/"+cid+"/disable", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPost, "/clients/"+cid+"/enable", nil), http.StatusOK, "")
	// Errors on the way: 400, 401, 403, 404, 412, 415, 428.
	expect(t, e.do("root", http.MethodPost, "/clients", `{"colour":"red"}`), http.StatusBadRequest, "")
	expect(t, e.do("", http.MethodGet, "/clients", nil), http.StatusUnauthorized, "")
	expect(t, e.do("audit", http.MethodGet, "/clients", nil), http.StatusForbidden, "")
	expect(t, e.do("root", http.MethodGet, "/clients/none", nil), http.StatusNotFound, "")
	expect(t, e.do("root", http.MethodPut, "/clients/"+cid, got, "If-Match", `"1"`), http.StatusPreconditionFailed, "")
	expect(t, e.do("root", http.MethodPut, "/clients/"+cid, got, "If-Match", `1`), http.StatusBadRequest, "")
	expect(t, e.do("root", http.MethodPut, "/clients/"+cid, got), http.StatusPreconditionRequired, "")
	expect(t, e.do("root", http.MethodPatch, "/clients/"+cid, `{}`, "If-Match", `"5"`), http.StatusUnsupportedMediaType, "")
	expect(t, e.do("root", http.MethodPatch, "/clients", nil), http.StatusMethodNotAllowed, "")

	// Users.
	const pw = "a long enough password"
	u := expect(t, e.do("root", http.MethodPost, "/users", map[string]any{"username": "doc", "password": pw}), http.StatusCreated, "")
	uid := u["id"].(string)
	expect(t, e.do("root", http.MethodGet, "/users", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodGet, "/users?username=doc", nil), http.StatusOK, "")
	ug := expect(t, e.do("root", http.MethodGet, "/users/"+uid, nil), http.StatusOK, "")
	ug["email"] = "doc@example.com"
	expect(t, e.do("root", http.MethodPut, "/users/"+uid, ug, "If-Match", `"1"`), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPatch, "/users/"+uid, `{"email":null}`, "Content-Type", mp, "If-Match", `"2"`), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPost, "/users/"+uid+"/disable", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPost, "/users/"+uid+"/enable", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPost, "/users/"+uid+"/password", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPost, "/users/"+uid+"/totp/reset", nil), http.StatusOK, "")
	if err := e.store.SaveConsent(ctx, &storage.Consent{Subject: uid, ClientID: cid, Scopes: []string{"openid"}, GrantedAt: time.Now().UTC().Truncate(time.Second)}); err != nil {
		t.Fatal(err)
	}
	expect(t, e.do("root", http.MethodGet, "/users/"+uid+"/consents", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodDelete, "/users/"+uid+"/consents/"+cid, nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodDelete, "/users/"+uid+"/sessions", nil), http.StatusOK, "")
	dave := expect(t, e.do("root", http.MethodPost, "/users", map[string]any{"username": "dave", "password": pw}), http.StatusCreated, "")
	e.userKey("dave", dave["id"].(string), apikeys.ScopeIntrospect)
	expect(t, e.do("dave", http.MethodPost, "/users/self/password", map[string]any{"current_password": pw, "new_password": pw + "!"}), http.StatusOK, "")
	expect(t, e.do("dave", http.MethodPost, "/users/self/password", map[string]any{"current_password": pw, "new_password": pw + "!"}), http.StatusForbidden, "")
	expect(t, e.do("users", http.MethodPatch, "/users/"+uid, `{"admin_scopes":["admin:keys"]}`, "Content-Type", mp, "If-Match", `"7"`), http.StatusForbidden, "")
	expect(t, e.do("root", http.MethodDelete, "/users/"+uid, nil), http.StatusOK, "")

	// API keys.
	expect(t, e.do("root", http.MethodGet, "/apikeys/self", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodGet, "/apikeys", nil), http.StatusOK, "")
	k := expect(t, e.do("root", http.MethodPost, "/apikeys", map[string]any{
		"name": "doc", "owner_type": "service", "owner_id": "doc", "scopes": []string{apikeys.ScopeAuditRead},
	}), http.StatusCreated, "")
	kid := k["id"].(string)
	e.tokens["doc-key"] = k["token"].(string)
	expect(t, e.do("root", http.MethodGet, "/apikeys/"+kid, nil), http.StatusOK, "")
	rot := expect(t, e.do("root", http.MethodPost, "/apikeys/"+kid+"/rotate", nil), http.StatusOK, "")
	if s, _ := rot["token"].(string); s != "" {
		e.tokens["doc-key"] = s
	}
	expect(t, e.do("doc-key", http.MethodPost, "/apikeys/self/revoke", nil), http.StatusOK, "")
	k2 := expect(t, e.do("root", http.MethodPost, "/apikeys", map[string]any{
		"name": "doc2", "owner_type": "service", "owner_id": "doc", "scopes": []string{apikeys.ScopeAuditRead},
	}), http.StatusCreated, "")
	expect(t, e.do("root", http.MethodPost, "/apikeys/"+k2["id"].(string)+"/revoke", nil), http.StatusOK, "")

	// Signing keys, audit, blocks.
	ks := expect(t, e.do("root", http.MethodGet, "/keys", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPost, "/keys/rotate", map[string]any{"alg": "ES256"}), http.StatusOK, "")
	var revokable string
	for _, it := range ks["items"].([]any) {
		m := it.(map[string]any)
		if m["state"] != "active" {
			revokable, _ = m["kid"].(string)
		}
	}
	if revokable != "" {
		expect(t, e.do("root", http.MethodPost, "/keys/"+revokable+"/revoke", nil), http.StatusOK, "")
	}
	expect(t, e.do("root", http.MethodGet, "/audit?limit=5", nil), http.StatusOK, "")
	if err := e.store.PutBlock(ctx, &storage.Block{Kind: "ip", Value: "192.0.2.1", Reason: "test", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	expect(t, e.do("root", http.MethodGet, "/blocks", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodDelete, "/blocks/ip/192.0.2.1", nil), http.StatusNoContent, "")
	// Initial access tokens for dynamic client registration.
	it := expect(t, e.do("root", http.MethodPost, "/registration/tokens", map[string]any{
		"description": "partner", "scope": "openid read", "max_clients": 3, "expires_in": "2h",
	}), http.StatusCreated, "")
	itID := it["id"].(string)
	expect(t, e.do("root", http.MethodGet, "/registration/tokens", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodGet, "/registration/tokens/"+itID, nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPost, "/registration/tokens/"+itID+"/revoke", nil), http.StatusOK, "")
	expect(t, e.do("root", http.MethodPost, "/registration/tokens", map[string]any{"max_clients": 0, "expires_in": "1s"}), http.StatusBadRequest, "")
	expect(t, e.do("root", http.MethodPost, "/registration/tokens", map[string]any{"registered": 5}), http.StatusBadRequest, "")
	expect(t, e.do("audit", http.MethodPost, "/registration/tokens", map[string]any{}), http.StatusForbidden, "")
	expect(t, e.do("root", http.MethodGet, "/registration/tokens/none", nil), http.StatusNotFound, "")

	expect(t, e.do("root", http.MethodDelete, "/clients/"+cid, nil), http.StatusNoContent, "")

	var missed []string
	for _, p := range doc.Paths.InMatchingOrder() {
		for _, op := range doc.Paths.Value(p).Operations() {
			if !v.ok[op.OperationID] {
				missed = append(missed, op.OperationID)
			}
		}
	}
	sort.Strings(missed)
	if len(missed) > 0 {
		t.Errorf("operations never answered 2xx here: %s", strings.Join(missed, ", "))
	}
}

// The document is public on the admin listener: no key needed, and it
// holds nothing secret. Every operation has an operationId and tags, and
// the bearer scheme carries no scopes (OpenAPI 3.0 §4.8.30).
func TestOpenAPIServedWithoutKey(t *testing.T) {
	e := newEnv(t, newMemory())
	r := e.do("", http.MethodGet, "/openapi.json", nil)
	expect(t, r, http.StatusOK, "")
	if !bytes.Equal(r.body, OpenAPI()) || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("document not served as is: %s", r.header.Get("Content-Type"))
	}
	for _, tok := range e.tokens {
		if strings.Contains(string(r.body), tok) {
			t.Fatal("the document contains a key")
		}
	}
	expect(t, e.do("", http.MethodPost, "/openapi.json", nil), http.StatusMethodNotAllowed, "method_not_allowed")
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" || len(op.Tags) == 0 || ids[op.OperationID] {
				t.Errorf("%s %s: operationId %q tags %v", method, path, op.OperationID, op.Tags)
			}
			ids[op.OperationID] = true
			if op.Security != nil {
				for _, req := range *op.Security {
					for scheme, scopes := range req {
						if len(scopes) != 0 {
							t.Errorf("%s %s: %s lists scopes %v", method, path, scheme, scopes)
						}
					}
				}
			}
		}
	}
}
