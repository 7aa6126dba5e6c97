package admin

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// liveOwnerKeys lists the ids of the owner's API keys that are not revoked.
func liveOwnerKeys(t *testing.T, e *env, ownerType, ownerID string) []string {
	t.Helper()
	ks, err := e.store.ListAPIKeys(context.Background(), storage.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range ks {
		if k.OwnerType == ownerType && k.OwnerID == ownerID && k.Status != storage.APIKeyRevoked {
			out = append(out, k.ID)
		}
	}
	return out
}

// A disabled client or user gets no API key: 409 with a precise message,
// nothing stored.
func TestAPIKeyForDisabledOwnerRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		expect(t, e.do("root", http.MethodPost, "/clients", map[string]any{
			"client_id": "gone", "grant_types": []string{"client_credentials"},
		}), http.StatusCreated, "")
		uid := expect(t, e.do("root", http.MethodPost, "/users", map[string]any{"username": "gone-user"}), http.StatusCreated, "")["id"].(string)
		expect(t, e.do("root", http.MethodPost, "/clients/gone/disable", nil), http.StatusOK, "")
		expect(t, e.do("root", http.MethodPost, "/users/"+uid+"/disable", nil), http.StatusOK, "")
		for _, tc := range []struct{ ownerType, ownerID string }{{"client", "gone"}, {"user", uid}} {
			m := expect(t, e.do("root", http.MethodPost, "/apikeys", map[string]any{
				"name": "k", "owner_type": tc.ownerType, "owner_id": tc.ownerID, "scopes": []string{"introspect"},
			}), http.StatusConflict, "conflict")
			if m["error_description"] != "the key's owner is disabled; enable it before creating a key" {
				t.Fatalf("imprecise message: %v", m)
			}
			if live := liveOwnerKeys(t, e, tc.ownerType, tc.ownerID); len(live) != 0 {
				t.Fatalf("refused key stored for %s %s: %v", tc.ownerType, tc.ownerID, live)
			}
		}
	})
}

// Creates released together with a disable over HTTP: each create is
// 201 or 409, never 5xx, and the disabled owner keeps no live key.
func TestAPIKeyCreateRacingDisable(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		expect(t, e.do("root", http.MethodPost, "/clients", map[string]any{
			"client_id": "racer", "grant_types": []string{"client_credentials"},
		}), http.StatusCreated, "")
		uid := expect(t, e.do("root", http.MethodPost, "/users", map[string]any{"username": "racer-user"}), http.StatusCreated, "")["id"].(string)
		for _, tc := range []struct{ ownerType, ownerID, disable string }{
			{"client", "racer", "/clients/racer/disable"},
			{"user", uid, "/users/" + uid + "/disable"},
		} {
			const n = 8
			got := storagetest.Together(n, func(i int) resp {
				if i == 0 {
					return e.do("root", http.MethodPost, tc.disable, nil)
				}
				return e.do("root", http.MethodPost, "/apikeys", map[string]any{
					"name": fmt.Sprintf("k%d", i), "owner_type": tc.ownerType, "owner_id": tc.ownerID, "scopes": []string{"introspect"},
				})
			})
			if got[0].status != http.StatusOK {
				t.Fatalf("disable %s: %d %s", tc.ownerType, got[0].status, got[0].body)
			}
			for i, r := range got[1:] {
				if r.status != http.StatusCreated && r.status != http.StatusConflict {
					t.Fatalf("create %d: %d %s", i+1, r.status, r.body)
				}
			}
			if live := liveOwnerKeys(t, e, tc.ownerType, tc.ownerID); len(live) != 0 {
				t.Fatalf("disabled %s kept live keys %v", tc.ownerType, live)
			}
		}
	})
}
