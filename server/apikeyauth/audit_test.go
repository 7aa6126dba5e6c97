package apikeyauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/apikeyauth"
	"github.com/bulwark-auth/bulwark/storage"
)

// refusing is a Verifier that refuses every token with err.
type refusing struct{ err error }

func (r refusing) Verify(context.Context, string) (*apikeys.Principal, *storage.APIKey, error) {
	return nil, nil, r.err
}

// Every refused authentication is one audit event: actor unknown, a
// reason, never the presented token.
func TestRefusedAuthenticationIsAudited(t *testing.T) {
	const presented = "bwk_AAAAAAAAAAAA_presented-secret-material-0123456789"
	cases := []struct {
		name, auth, reason string
		err                error
	}{
		{"case=missing", "", "missing", nil},
		{"case=malformed", "Bearer " + presented, "malformed", apikeys.ErrMalformed},
		{"case=invalid", "Bearer " + presented, "invalid", apikeys.ErrInvalid},
		{"case=revoked", "Bearer " + presented, "revoked", apikeys.ErrRevoked},
		{"case=expired", "Bearer " + presented, "expired", apikeys.ErrExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu     sync.Mutex
				events []storage.AuditEvent
			)
			record := func(_ context.Context, e storage.AuditEvent) {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			}
			next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("next handler reached") })
			srv := httptest.NewServer(apikeyauth.Middleware(refusing{tc.err}, apikeyauth.WithAudit(record))(next))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/v1/clients", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d", res.StatusCode)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(events) != 1 {
				t.Fatalf("%d events, want 1", len(events))
			}
			e := events[0]
			if e.Event != apikeyauth.EventAuthFailed || e.Actor != "unknown" || e.Outcome != "failure" || e.Details["reason"] != tc.reason {
				t.Fatalf("event %+v", e)
			}
			raw, _ := json.Marshal(e)
			if strings.Contains(string(raw), "presented-secret") {
				t.Fatal("the presented token is in the event")
			}
		})
	}
}
