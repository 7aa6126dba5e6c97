package main

// Containment against the device grant's mint (RFC 8628): a poll that
// consumed an approval mints in a transaction that holds the user's and
// the client's mint locks shared (storage.MintLocker), so a disable and
// its revocation either commit first and the poll is refused, or wait for
// the mint and then revoke it. Real HTTP, real Postgres.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// lockClassSubject is the advisory lock class of a subject in
// storage/postgres (doc.go, lock order); the tests hold it the way a
// containment transaction does.
const lockClassSubject = 0x62770002

// deviceContainmentE2E starts a replica without request-rate limits, a
// pool on its database, the "tv" device client, a person signed in as
// alice, alice's id and an admin key that may disable users and clients.
func deviceContainmentE2E(t *testing.T) (s *e2eServer, pool *pgxpool.Pool, cfg *oauth2.Config, p *devicePerson, alice, adminKey string) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	s = startE2E(t, dsn, func(c *config) { c.RateLimits, c.ClientRateLimits = nil, nil })
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pool.QueryRow(context.Background(), `SELECT id FROM users WHERE username = 'alice'`).Scan(&alice); err != nil {
		t.Fatal(err)
	}
	adminKey = cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:users admin:clients:write")
	return s, pool, addDeviceClient(t, s, "tv"), newDevicePerson(t, s), alice, adminKey
}

// approvedDevice returns a device code that alice approved.
func approvedDevice(t *testing.T, cfg *oauth2.Config, p *devicePerson) string {
	t.Helper()
	da := deviceAuth(t, cfg)
	if status, body := p.decide(p.toDecision(da.UserCode), "approve"); status != http.StatusOK || !strings.Contains(body, "Device connected") {
		t.Fatalf("approve: %d %.300s", status, body)
	}
	return da.DeviceCode
}

type deviceAnswer struct {
	status int
	body   map[string]any
	err    error
}

// pollAnswer is one raw poll, safe on any goroutine (no t.Fatal).
func pollAnswer(s *e2eServer, code string) deviceAnswer {
	form := url.Values{"grant_type": {deviceGrant}, "client_id": {"tv"}, "device_code": {code}}
	return sendAnswer(http.MethodPost, s.issuer+"/oauth2/token", form.Encode(), "")
}

// adminAnswer is one admin POST with a bearer key, safe on any goroutine.
func adminAnswer(s *e2eServer, path, key string) deviceAnswer {
	return sendAnswer(http.MethodPost, s.adminURL+path, "", key)
}

// sendAnswer sends one request with an optional form body and bearer key
// and returns its status and JSON body, safe on any goroutine.
func sendAnswer(method, target, form, bearer string) deviceAnswer {
	req, err := http.NewRequest(method, target, strings.NewReader(form))
	if err != nil {
		return deviceAnswer{err: err}
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return deviceAnswer{err: err}
	}
	defer res.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(res.Body).Decode(&body)
	return deviceAnswer{status: res.StatusCode, body: body}
}

// activeTokensOf counts, in the store, the access tokens and active
// refresh tokens of subject: containment deletes the former and
// deactivates the latter.
func activeTokensOf(t *testing.T, pool *pgxpool.Pool, subject string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM token_sessions
		WHERE subject = $1 AND (kind = 'access' OR (kind = 'refresh' AND active))`, subject).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkContained asserts that the tokens a poll got, if any, are inactive
// at introspection and cannot be refreshed.
func checkContained(t *testing.T, s *e2eServer, cfg *oauth2.Config, a deviceAnswer) {
	t.Helper()
	at, _ := a.body["access_token"].(string)
	rt, _ := a.body["refresh_token"].(string)
	if at != "" && activeIn(s, at) {
		t.Fatal("an access token the poll minted survived containment")
	}
	if rt == "" {
		return
	}
	if activeIn(s, rt) {
		t.Fatal("a refresh token the poll minted survived containment")
	}
	if _, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token(); err == nil {
		t.Fatal("a refresh token the poll minted refreshed after containment")
	}
}

// TestE2EDeviceMintWaitsForContainment forces both orders of a device
// grant's mint and a disable of its user. The test's own connection holds
// alice's subject lock exclusively, as a containment transaction does,
// while an approved poll is parked at its mint lock:
//   - containment first: in that transaction the test disables alice and
//     revokes her tokens, then commits; the poll must answer invalid_grant
//     and mint nothing.
//   - mint first: the admin API's disable queues behind the poll; the test
//     lets both go; the poll mints, the disable then revokes what it minted.
func TestE2EDeviceMintWaitsForContainment(t *testing.T) {
	// parkPoll holds the user's subject lock exclusively in a transaction
	// of the test's own, as containment does, and starts the approved poll
	// of code, which waits for it at its mint lock.
	parkPoll := func(t *testing.T, s *e2eServer, pool *pgxpool.Pool, user, code string) (pgx.Tx, <-chan deviceAnswer) {
		t.Helper()
		ctx := context.Background()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext($2))`, lockClassSubject, user); err != nil {
			t.Fatal(err)
		}
		polled := make(chan deviceAnswer, 1)
		go func() { polled <- pollAnswer(s, code) }()
		waitForLockWaiters(t, pool, 1)
		return tx, polled
	}

	t.Run("case=containment commits first", func(t *testing.T) {
		s, pool, cfg, p, alice, _ := deviceContainmentE2E(t)
		code := approvedDevice(t, cfg, p)
		ctx := context.Background()
		tx, polled := parkPoll(t, s, pool, alice, code)
		for _, q := range []string{
			`UPDATE users SET disabled = true WHERE id = $1`,
			`UPDATE token_sessions SET active = false WHERE kind IN ('code', 'refresh') AND active AND subject = $1`,
			`DELETE FROM token_sessions WHERE kind = 'access' AND subject = $1`,
		} {
			if _, err := tx.Exec(ctx, q, alice); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		a := <-polled
		if a.err != nil || a.status != http.StatusBadRequest || a.body["error"] != "invalid_grant" {
			t.Fatalf("poll after the disable committed: %d %v (%v), want 400 invalid_grant", a.status, a.body, a.err)
		}
		if n := activeTokensOf(t, pool, alice); n != 0 {
			t.Fatalf("%d tokens of the disabled user are active", n)
		}
		// The approval was consumed: polling again mints nothing either.
		if status, out := s.poll("tv", code); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("poll again: %d %v", status, out)
		}
	})

	t.Run("case=mint commits first", func(t *testing.T) {
		s, pool, cfg, p, alice, adminKey := deviceContainmentE2E(t)
		code := approvedDevice(t, cfg, p)
		ctx := context.Background()
		tx, polled := parkPoll(t, s, pool, alice, code)
		disabled := make(chan deviceAnswer, 1)
		go func() { disabled <- adminAnswer(s, "/admin/v1/users/"+alice+"/disable", adminKey) }()
		waitForLockWaiters(t, pool, 2)
		// The poll asked first: its shared lock is granted first, and the
		// disable's exclusive one waits for the mint to commit.
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		a, d := <-polled, <-disabled
		if d.err != nil || d.status != http.StatusOK {
			t.Fatalf("disable: %d %v (%v)", d.status, d.body, d.err)
		}
		if a.err != nil || a.status != http.StatusOK || a.body["access_token"] == nil || a.body["refresh_token"] == nil {
			t.Fatalf("poll ahead of the disable: %d %v (%v), want 200 with tokens", a.status, a.body, a.err)
		}
		if n := activeTokensOf(t, pool, alice); n != 0 {
			t.Fatalf("%d tokens of the disabled user are active", n)
		}
		checkContained(t, s, cfg, a)
	})
}

// TestE2EDeviceMintsRacingDisable releases polls of several approved
// device codes of alice together with a disable of alice, or of the
// client: the disable answers 200, no poll answers 5xx, and afterwards no
// token of alice is active, whoever won.
func TestE2EDeviceMintsRacingDisable(t *testing.T) {
	for _, c := range []struct{ name, path string }{
		{"case=disable user", "/admin/v1/users/%s/disable"},
		{"case=disable client", "/admin/v1/clients/tv/disable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, pool, cfg, p, alice, adminKey := deviceContainmentE2E(t)
			const n = 8
			codes := make([]string, n)
			for i := range codes {
				codes[i] = approvedDevice(t, cfg, p)
			}
			path := c.path
			if strings.Contains(path, "%s") {
				path = fmt.Sprintf(path, alice)
			}
			// One admin call first caches the key's verification, so the
			// disable reaches the store while the polls mint instead of
			// queueing behind Argon2id.
			if st, out := adminDo(t, http.MethodGet, s.adminURL+"/admin/v1/users/"+alice, adminKey, ""); st != http.StatusOK {
				t.Fatalf("warm-up: %d %v", st, out)
			}
			res := storagetest.Together(n+1, func(i int) deviceAnswer {
				if i == n {
					return adminAnswer(s, path, adminKey)
				}
				return pollAnswer(s, codes[i])
			})
			if res[n].err != nil || res[n].status != http.StatusOK {
				t.Fatalf("disable: %d %v (%v)", res[n].status, res[n].body, res[n].err)
			}
			won := 0
			for i, a := range res[:n] {
				switch {
				case a.err != nil:
					t.Fatalf("poll %d: %v", i, a.err)
				case a.status == http.StatusOK:
					won++
				case a.status == http.StatusBadRequest && a.body["error"] == "invalid_grant":
					// Refused at the mint: the user or client was disabled.
				case a.status == http.StatusUnauthorized && a.body["error"] == "invalid_client":
					// The client was already disabled when the poll authenticated.
				default:
					t.Fatalf("poll %d: %d %v", i, a.status, a.body)
				}
			}
			if n := activeTokensOf(t, pool, alice); n != 0 {
				t.Fatalf("%d tokens of alice are active after the disable", n)
			}
			for _, a := range res[:n] {
				checkContained(t, s, cfg, a)
			}
			t.Logf("%d of %d polls minted before the disable", won, n)
		})
	}
}
