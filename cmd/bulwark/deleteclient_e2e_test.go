package main

import (
	"context"
	"net/http"
	"testing"
)

// TestE2EDeleteClientWhileRefreshUncommitted: deleting a client while a
// refresh of one of its grants is uncommitted waits for that refresh, so
// the tokens it mints are deleted with the client instead of outliving it
// as orphan rows. Neither side gets a 5xx.
func TestE2EDeleteClientWhileRefreshUncommitted(t *testing.T) {
	s, pool, _, dsn := singleUseE2E(t)
	ctx := context.Background()
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:write")
	_, refreshed, release := parkRefresh(t, s, pool)
	deleted := make(chan deviceAnswer, 1)
	go func() { deleted <- sendAnswer(http.MethodDelete, s.adminURL+"/admin/v1/clients/conf", "", adminKey) }()
	waitForLockWaiters(t, pool, 2)
	release()

	if d := <-deleted; d.status != http.StatusNoContent && d.status != http.StatusOK {
		t.Fatalf("delete client: %d %v", d.status, d.body)
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
