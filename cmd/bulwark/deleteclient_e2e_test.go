package main

import (
	"context"
	"net/http"
	"testing"

	"golang.org/x/oauth2"
)

// TestE2EDeleteClientWhileRefreshUncommitted: deleting a client while a
// refresh of one of its grants is uncommitted waits for that refresh, so
// the tokens it mints are deleted with the client instead of outliving it
// as orphan rows. Neither side gets a 5xx.
func TestE2EDeleteClientWhileRefreshUncommitted(t *testing.T) {
	s, pool, _, dsn := singleUseE2E(t)
	ctx := context.Background()
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:write")
	conf := suConfig(s, "conf", suConfSecret, "openid", "offline_access")
	code, _ := suCode(t, s, conf, false)
	t0, err := conf.Exchange(ctx, code)
	if err != nil {
		t.Fatal(err)
	}

	release := holdAccessRows(t, pool)
	refreshed := make(chan outcome, 1)
	go func() {
		refreshed <- toOutcome(conf.TokenSource(ctx, &oauth2.Token{RefreshToken: t0.RefreshToken}).Token())
	}()
	waitForLockWaiters(t, pool, 1)
	deleted := make(chan int, 1)
	go func() {
		// Not adminDo: t.Fatal must not run on this goroutine.
		req, _ := http.NewRequest(http.MethodDelete, s.adminURL+"/admin/v1/clients/conf", nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			deleted <- 0
			return
		}
		_ = res.Body.Close()
		deleted <- res.StatusCode
	}()
	waitForLockWaiters(t, pool, 2)
	release()

	if st := <-deleted; st != http.StatusNoContent && st != http.StatusOK {
		t.Fatalf("delete client: %d", st)
	}
	if r := <-refreshed; r.status >= 500 || r.err != nil && r.status == 0 {
		t.Fatalf("refresh: %d %v", r.status, r.err)
	}
	var orphans int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM token_sessions WHERE client_id = 'conf'`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Fatalf("%d token rows of the deleted client survived it", orphans)
	}
}
