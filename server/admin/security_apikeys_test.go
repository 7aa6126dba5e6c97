package admin

import (
	"context"
	"net/http"
	"testing"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// An API key owned by a client can be exchanged for access tokens of that
// client (RFC 8693), so creating one is issuing a client credential: it
// needs admin:clients:write, like rotating the client's secret, and the
// client must exist.
func TestClientOwnedAPIKeyNeedsClientsWrite(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		expect(t, e.do("root", http.MethodPost, "/clients", map[string]any{
			"client_id": "billing", "grant_types": []string{"client_credentials"},
		}), http.StatusCreated, "")
		body := map[string]any{"name": "k", "owner_type": "client", "owner_id": "billing", "scopes": []string{"introspect"}}
		expect(t, e.do("apikeys-only", http.MethodPost, "/apikeys", body), http.StatusForbidden, "insufficient_scope")
		ks, err := e.store.ListAPIKeys(context.Background(), storage.ListOptions{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			if k.OwnerType == apikeys.OwnerClient {
				t.Fatalf("a refused key was stored: %+v", k.ID)
			}
		}
		// Service-owned keys need no client power.
		expect(t, e.do("apikeys-only", http.MethodPost, "/apikeys", map[string]any{
			"name": "k", "owner_type": "service", "owner_id": "billing", "scopes": []string{"introspect"},
		}), http.StatusCreated, "")
		// With admin:clients:write: allowed for an existing client only.
		kid := expect(t, e.do("root", http.MethodPost, "/apikeys", body), http.StatusCreated, "")["id"].(string)
		// Rotating it hands out a new credential of the client too.
		r := e.do("apikeys-only", http.MethodPost, "/apikeys/"+kid+"/rotate", nil)
		if expect(t, r, http.StatusForbidden, "insufficient_scope")["token"] != nil {
			t.Fatalf("refused rotation returned a token: %s", r.body)
		}
		expect(t, e.do("root", http.MethodPost, "/apikeys/"+kid+"/rotate", nil), http.StatusOK, "")
		body["owner_id"] = "nosuchclient"
		m := expect(t, e.do("root", http.MethodPost, "/apikeys", body), http.StatusBadRequest, "invalid_request")
		if !hasField(m, "owner_id") {
			t.Fatalf("does not name owner_id: %v", m)
		}
	})
}
