package main

// Every issued token has its audit row, written in the same statement as
// the token (storage.TokenAudit): tokens minted in parallel over HTTP on
// Postgres each have exactly one row, under the request id the response
// carried.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// tokenAnswer is one token request's outcome; status 0 is a transport
// error.
type tokenAnswer struct {
	status    int
	requestID string
	token     string
}

// postToken asks for a client_credentials token with HTTP Basic.
func postToken(tokenURL, id, secret string) tokenAnswer {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
	req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return tokenAnswer{}
	}
	defer r.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(r.Body).Decode(&out)
	return tokenAnswer{status: r.StatusCode, requestID: r.Header.Get("X-Request-Id"), token: out.AccessToken}
}

// issuedAuditRequestIDs returns the request ids of the client's
// oauth.token.issued rows, sorted, failing on a row without the
// client_credentials grant.
func issuedAuditRequestIDs(t *testing.T, pool *pgxpool.Pool, clientID string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT request_id, details->>'grant_type' FROM audit_events
		WHERE event = 'oauth.token.issued' AND client_id = $1`, clientID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id, grant string
		if err := rows.Scan(&id, &grant); err != nil {
			t.Fatal(err)
		}
		if grant != "client_credentials" {
			t.Fatalf("audit row %s: grant_type %q", id, grant)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

func TestE2EParallelTokensEachHaveOneAuditRow(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	const n = 48
	res := storagetest.Together(n, func(int) tokenAnswer {
		return postToken(s.issuer+"/oauth2/token", "svc", e2eSvcSecret)
	})
	want := []string{}
	for i, a := range res {
		if a.status != http.StatusOK || a.token == "" || a.requestID == "" {
			t.Fatalf("token request %d: status %d, request id %q", i, a.status, a.requestID)
		}
		want = append(want, a.requestID)
	}
	slices.Sort(want)
	if got := issuedAuditRequestIDs(t, pool, "svc"); !slices.Equal(got, want) {
		t.Fatalf("audit rows of issued tokens:\n got %d %q\nwant %d %q", len(got), got, len(want), want)
	}
	var tokens int
	if err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM token_sessions WHERE kind = 'access' AND client_id = 'svc'`).Scan(&tokens); err != nil {
		t.Fatal(err)
	}
	if tokens != n {
		t.Fatalf("%d access token rows, want %d", tokens, n)
	}
	for i, a := range res[:4] {
		if !activeIn(s, a.token) {
			t.Fatalf("token %d is not active", i)
		}
	}
}

// Grants minted inside a transaction (code exchange, refresh rotation)
// write their audit row in it: one row per answered token, with the
// user as subject; a replayed code or refresh token, refused, adds none.
func TestE2ETransactionalGrantsAuditWithTheirToken(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	conf := oauth2.Config{ClientID: "web", ClientSecret: e2eWebSecret,
		Endpoint:    oauth2.Endpoint{AuthURL: s.issuer + "/oauth2/auth", TokenURL: s.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader},
		RedirectURL: "http://127.0.0.1:9999/callback", Scopes: []string{"openid", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	code := s.login(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier))).Query().Get("code")
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"redirect_uri": {conf.RedirectURL}}
	status, out := s.post("/oauth2/token", exchange, "web", e2eWebSecret)
	refresh, _ := out["refresh_token"].(string)
	if status != http.StatusOK || refresh == "" {
		t.Fatalf("code exchange: %d %v", status, out)
	}
	rotate := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
	if status, out := s.post("/oauth2/token", rotate, "web", e2eWebSecret); status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, out)
	}
	// Replays are refused and must not claim issuance.
	if status, _ := s.post("/oauth2/token", exchange, "web", e2eWebSecret); status != http.StatusBadRequest {
		t.Fatalf("replayed code: %d", status)
	}
	if status, _ := s.post("/oauth2/token", rotate, "web", e2eWebSecret); status != http.StatusBadRequest {
		t.Fatalf("replayed refresh token: %d", status)
	}

	rows, err := pool.Query(ctx, `SELECT details->>'grant_type', subject FROM audit_events
		WHERE event = 'oauth.token.issued' AND client_id = 'web' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var grants []string
	for rows.Next() {
		var grant, subject string
		if err := rows.Scan(&grant, &subject); err != nil {
			t.Fatal(err)
		}
		if subject == "" {
			t.Fatalf("%s audit row without the user as subject", grant)
		}
		grants = append(grants, grant)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(grants, []string{"authorization_code", "refresh_token"}) {
		t.Fatalf("issued audit rows by grant: %q, want one code exchange and one refresh", grants)
	}
}
