package main

// The janitor removes initial access tokens some time after they end, and a
// client registered with a removed token can still manage itself (RFC 7592)
// without gaining anything the token did not allow.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// TestE2EEndedInitialTokensLeaveAfterRetention: `bulwark janitor` deletes
// initial access tokens that expired or were revoked longer ago than
// --registration-token-retention, keeps younger and live ones, and the
// clients registered with a deleted token keep working, their updates
// bounded by what they hold.
func TestE2EEndedInitialTokensLeaveAfterRetention(t *testing.T) {
	unsetConfigEnv(t)
	dsn := pgtest.NewDatabase(t)
	clock := &offsetClock{}
	s := startRegistrationServer(t, dsn, clock, false)
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:read admin:clients:write")
	reg := s.issuer + "/oauth2/register"
	narrow := map[string]any{"max_clients": 2, "expires_in": "1h", "scope": "profile", "grant_types": []string{"client_credentials"}}

	// Nine days ago: a token valid for an hour registers a client, and a
	// long-lived one is revoked. Both ended more than a week ago.
	clock.advance(-9 * 24 * time.Hour)
	oldID, old := issueInitialToken(t, s, adminKey, narrow)
	st, c, _ := regCall(t, http.MethodPost, reg, old, `{"client_name":"partner","grant_types":["client_credentials"],"scope":"profile"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, c)
	}
	revokedID, _ := issueInitialToken(t, s, adminKey, map[string]any{"max_clients": 1, "expires_in": "720h"})
	if st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/registration/tokens/"+revokedID+"/revoke", adminKey, ""); st != http.StatusOK {
		t.Fatalf("revoke: %d %v", st, out)
	}
	// Three days ago: a token that expired since, within the retention.
	clock.advance(6 * 24 * time.Hour)
	recentID, _ := issueInitialToken(t, s, adminKey, narrow)
	// Now: a live token.
	clock.advance(3 * 24 * time.Hour)
	liveID, _ := issueInitialToken(t, s, adminKey, narrow)

	uri, regTok, id := c["registration_client_uri"].(string), c["registration_access_token"].(string), c["client_id"].(string)
	update := func(scope string) (int, map[string]any) {
		t.Helper()
		st, out, _ := regCall(t, http.MethodPut, uri, regTok,
			fmt.Sprintf(`{"client_id":%q,"client_name":"partner","grant_types":["client_credentials"],"scope":%q}`, id, scope))
		if tok, ok := out["registration_access_token"].(string); ok {
			regTok = tok
		}
		return st, out
	}
	// While the token exists it bounds updates (the policy would allow email).
	if st, out := update("profile email"); st != http.StatusBadRequest || out["error"] != "invalid_client_metadata" {
		t.Fatalf("update beyond the token's scopes: %d %v", st, out)
	}

	// The janitor, as an operator's cron job runs it.
	t.Setenv("DATABASE_URL", dsn)
	code, out, errs := cliRun(t, "", "janitor", "--registration-token-retention", "168h")
	if code != 0 || !strings.HasPrefix(out, "removed ") {
		t.Fatalf("janitor: %d %q %q", code, out, errs)
	}
	for id, want := range map[string]int{oldID: http.StatusNotFound, revokedID: http.StatusNotFound, recentID: http.StatusOK, liveID: http.StatusOK} {
		if st, out := adminDo(t, http.MethodGet, s.adminURL+"/admin/v1/registration/tokens/"+id, adminKey, ""); st != want {
			t.Fatalf("token %s after the janitor: %d %v, want %d", id, st, out, want)
		}
	}
	if code, out, _ := cliRun(t, "", "janitor", "--registration-token-retention", "0"); code != 0 || !strings.HasPrefix(out, "removed 0 expired rows") {
		t.Fatalf("retention 0 keeps ended tokens: %q", out)
	}

	// The client registered with the deleted token still manages itself,
	// within what it holds: the deleted token's bounds are not forgotten.
	if st, got := adminDo(t, http.MethodGet, s.adminURL+"/admin/v1/clients/"+id, adminKey, ""); st != http.StatusOK || got["registered_via"] != oldID {
		t.Fatalf("client after its token went: %d %v", st, got)
	}
	if st, out := update("profile email"); st != http.StatusBadRequest || out["error"] != "invalid_client_metadata" {
		t.Fatalf("update beyond what the client holds after its token went: %d %v", st, out)
	}
	if st, out := update("profile"); st != http.StatusOK || out["client_name"] != "partner" {
		t.Fatalf("update within what the client holds: %d %v", st, out)
	}
	if st, out, _ := regCall(t, http.MethodGet, uri, regTok, ""); st != http.StatusOK || out["scope"] != "profile" {
		t.Fatalf("read: %d %v", st, out)
	}
}
