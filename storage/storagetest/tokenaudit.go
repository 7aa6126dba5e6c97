package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// tokenAuditEvent is the kind of event the audit sink attaches to a mint.
func tokenAuditEvent(requestID string) storage.AuditEvent {
	return storage.AuditEvent{
		Time: now(), Event: "oauth.token.issued", Actor: "cc", ClientID: "cc", Outcome: "success",
		RequestID: requestID, Details: map[string]string{"grant_type": "client_credentials"},
	}
}

// issuedRequestIDs lists the request ids of the stored token audit events.
func issuedRequestIDs(t *testing.T, s storage.Store) []string {
	t.Helper()
	evs, err := s.ListAudit(ctx(t), storage.AuditFilter{Event: "oauth.token.issued"})
	must(t, err)
	ids := make([]string, 0, len(evs))
	for _, e := range evs {
		ids = append(ids, e.RequestID)
	}
	slices.Sort(ids)
	return ids
}

// tokenAuditTests: the audit event a request attaches (storage.TokenAudit)
// is stored with the request's access token, atomically: both or neither.
var tokenAuditTests = []test{
	{"tokenaudit/stored-with-the-access-token", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "cc")
		want := tokenAuditEvent("req-1")
		a := storage.NewTokenAudit(want)
		tctx := storage.WithTokenAudit(ctx(t), a)
		must(t, s.CreateAccessTokenSession(tctx, "at-1", newRequest("req-1", c, "")))
		if !a.Taken() || a.Event().ID == 0 {
			t.Fatalf("event not taken (%v) or no id assigned (%d)", a.Taken(), a.Event().ID)
		}
		evs, err := s.ListAudit(ctx(t), storage.AuditFilter{Event: "oauth.token.issued"})
		must(t, err)
		if len(evs) != 1 {
			t.Fatalf("%d audit rows, want 1", len(evs))
		}
		want.ID = a.Event().ID
		wantEqual(t, "stored event", &want, evs[0])
		// A second access token of the same request (none is minted
		// today) does not write the event twice.
		must(t, s.CreateAccessTokenSession(tctx, "at-2", newRequest("req-1", c, "")))
		wantEqual(t, "issued request ids", []string{"req-1"}, issuedRequestIDs(t, s))
	}},
	{"tokenaudit/only-an-access-token-takes-it", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "cc")
		a := storage.NewTokenAudit(tokenAuditEvent("req-1"))
		tctx := storage.WithTokenAudit(ctx(t), a)
		r := newRequest("req-1", c, "alice")
		must(t, s.CreateAuthorizeCodeSession(tctx, "code-1", r))
		must(t, s.CreateRefreshTokenSession(tctx, "rt-1", "at-1", r))
		must(t, s.CreatePKCERequestSession(tctx, "code-1", r))
		if a.Taken() {
			t.Fatal("a code, refresh token or PKCE row took the access token's audit event")
		}
		wantEqual(t, "issued request ids", []string{}, issuedRequestIDs(t, s))
	}},
	{"tokenaudit/refused-mint-writes-none", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "cc")
		disableClient(t, s, "cc")
		a := storage.NewTokenAudit(tokenAuditEvent("req-late"))
		err := s.CreateAccessTokenSession(storage.WithTokenAudit(ctx(t), a), "at-late", newRequest("req-late", c, ""))
		if !errors.Is(err, fosite.ErrInvalidClient) {
			t.Fatalf("mint for a disabled client: want invalid_client, got %v", err)
		}
		wantEqual(t, "issued request ids", []string{}, issuedRequestIDs(t, s))
	}},
	{"tokenaudit/transaction-keeps-both-or-neither", func(t *testing.T, s storage.Store) {
		r := txSetup(t, s)
		for _, commit := range []bool{false, true} {
			tx, err := s.BeginTX(ctx(t))
			must(t, err)
			a := storage.NewTokenAudit(tokenAuditEvent("req-1"))
			txWrites(t, s, storage.WithTokenAudit(tx, a), r)
			if !a.Taken() {
				t.Fatal("the exchange's access token did not take the event")
			}
			want := []string{}
			if commit {
				must(t, s.Commit(tx))
				want = append(want, "req-1")
			} else {
				must(t, s.Rollback(tx))
			}
			wantEqual(t, fmt.Sprintf("issued request ids after commit=%v", commit), want, issuedRequestIDs(t, s))
		}
	}},
	{"tokenaudit/mints-racing-disable", func(t *testing.T, s storage.Store) {
		const n = 16
		c := createClient(t, s, "cc")
		errs := Together(n+1, func(i int) error {
			if i == n {
				return disableAndRevoke(t, s, "cc")
			}
			id := fmt.Sprintf("req-%02d", i)
			a := storage.NewTokenAudit(tokenAuditEvent(id))
			return s.CreateAccessTokenSession(storage.WithTokenAudit(ctx(t), a), "at-"+id, newRequest(id, c, ""))
		})
		must(t, errs[n])
		won := []string{}
		for i, err := range errs[:n] {
			switch {
			case err == nil:
				won = append(won, fmt.Sprintf("req-%02d", i))
			case !errors.Is(err, fosite.ErrInvalidClient):
				t.Fatalf("mint %d: want success or invalid_client, got %v", i, err)
			}
		}
		// Exactly the mints that succeeded have their audit row, whether
		// or not containment revoked their token afterwards.
		wantEqual(t, "issued request ids", won, issuedRequestIDs(t, s))
	}},
}
