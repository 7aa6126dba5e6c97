package main

// Containment against client-only mints: client_credentials requests that
// are in flight while an operator disables the client. Those mints hold no
// grant lock; the token INSERT itself must serialise with the disable.

import (
	"context"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

func TestE2EClientCredentialsRacingDisable(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:read admin:clients:write")
	st, created := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients", adminKey,
		`{"client_name":"Batch job","grant_types":["client_credentials"],"scope":"api:read","token_endpoint_auth_method":"client_secret_basic"}`)
	if st != http.StatusCreated {
		t.Fatalf("create client: %d %v", st, created)
	}
	id, _ := created["client_id"].(string)
	secret, _ := created["client_secret"].(string)

	// One token first: it must be contained too, and it warms the cache of
	// verified secrets, so the racing mints reach the store while the
	// disable runs instead of queueing behind Argon2id.
	warm, err := (&clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: s.issuer + "/oauth2/token", Scopes: []string{"api:read"}}).Token(ctx)
	if err != nil {
		t.Fatalf("token before the race: %v", err)
	}

	const n = 16
	// Every racer returns its answer instead of failing the test from a
	// goroutine; a transport error is status 0.
	res := storagetest.Together(n+1, func(i int) tokenAnswer {
		if i < n {
			return postToken(s.issuer+"/oauth2/token", id, secret)
		}
		req, _ := http.NewRequest(http.MethodPost, s.adminURL+"/admin/v1/clients/"+id+"/disable", nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return tokenAnswer{}
		}
		_ = r.Body.Close()
		return tokenAnswer{status: r.StatusCode}
	})
	if res[n].status != http.StatusOK {
		t.Fatalf("disable answered %d", res[n].status)
	}
	minted := []string{warm.AccessToken}
	// The audit trail claims issuance for exactly the answered tokens: a
	// refused mint wrote no row (one statement writes token and row).
	wantIssued := map[string]bool{}
	for i, a := range res[:n] {
		switch {
		case a.status == http.StatusOK && a.token != "":
			minted = append(minted, a.token)
			wantIssued[a.requestID] = true
		case a.status == http.StatusUnauthorized, a.status == http.StatusTooManyRequests:
			// Refused: the client is disabled (invalid_client), and its
			// failures past the guard's limit are throttled per client.
		default:
			t.Fatalf("token request %d: %d (want 200, 401 or 429)", i, a.status)
		}
	}
	// The store, not only introspection (which refuses a disabled client's
	// tokens anyway), must hold no active access token of the client.
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM token_sessions WHERE kind = 'access' AND client_id = $1`, id).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d access tokens of the disabled client survived containment", left)
	}
	// Re-enabling does not revive what containment revoked.
	if st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients/"+id+"/enable", adminKey, ""); st != http.StatusOK {
		t.Fatalf("enable: %d %v", st, out)
	}
	for i, tok := range minted {
		if activeIn(s, tok) {
			t.Fatalf("token %d minted during containment is active", i)
		}
	}
	issued := issuedAuditRequestIDs(t, pool, id)
	racing := 0
	for _, rid := range issued {
		if wantIssued[rid] {
			racing++
		}
	}
	// One row per answered racer, plus the warm-up token's.
	if racing != len(wantIssued) || len(issued) != len(wantIssued)+1 {
		t.Fatalf("%d issued audit rows (%d of the racers), want %d racers + the warm-up", len(issued), racing, len(wantIssued))
	}
	t.Logf("%d of %d racing token requests won before the disable", len(minted)-1, n)
}
