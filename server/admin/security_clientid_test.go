package admin

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/bulwark-auth/bulwark/storage/memory"
)

// Client ids become path segments of the admin API and console: an id
// that cannot round-trip through a path (a slash, a dot segment, a query
// or fragment delimiter, a percent escape) would make a client that can
// never be read, disabled or deleted again.
func TestClientIDMustBeAddressable(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	for _, id := range []string{"a/b", ".", "..", "a?b", "a#b", "a%2Fb", `a\b`, "a\x00b", "a\u202eb"} {
		t.Run("id="+url.PathEscape(id), func(t *testing.T) {
			m := expect(t, e.do("clients", http.MethodPost, "/clients", map[string]any{
				"client_id": id, "grant_types": []string{"client_credentials"},
			}), http.StatusBadRequest, "invalid_client_metadata")
			if !hasField(m, "client_id") {
				t.Fatalf("does not name client_id: %v", m)
			}
		})
	}
	// Ordinary ids, including dots and unicode letters, are fine and
	// reachable.
	for _, id := range []string{"billing-service", "svc.v2", "app_1", "ünïcode"} {
		expect(t, e.do("clients", http.MethodPost, "/clients", map[string]any{
			"client_id": id, "grant_types": []string{"client_credentials"},
		}), http.StatusCreated, "")
		expect(t, e.do("clients", http.MethodPost, "/clients/"+url.PathEscape(id)+"/disable", nil), http.StatusOK, "")
	}
}
