package main

// Issue #9 (accounts, keys and audit half) end to end on Postgres over real
// HTTP: API-key chains and owners are contained as one, exchanged tokens
// die with their key, the active signing key is never missing, and failed
// authentications leave audit rows that hold no secret.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulwark-auth/bulwark/keys/apikey"
	"github.com/bulwark-auth/bulwark/server/apikeyauth"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// e2eRacers is how many requests the HTTP race tests release together.
const e2eRacers = 10

func keyID(t *testing.T, token string) string {
	t.Helper()
	k, err := apikey.Parse(token)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

// liveOwnerKeys returns the ids of the owner's keys that are not revoked,
// read straight from the database.
func liveOwnerKeys(t *testing.T, s *e2eServer, ownerType, ownerID string) []string {
	t.Helper()
	all, err := s.app.store.ListAPIKeys(context.Background(), storage.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range all {
		if k.OwnerType == ownerType && k.OwnerID == ownerID && k.Status != storage.APIKeyRevoked {
			out = append(out, k.ID)
		}
	}
	return out
}

// selfRotate calls /apikeys/self/rotate and returns the status and the
// successor token, if one was handed out.
func selfRotate(t *testing.T, s *e2eServer, key string) (int, string) {
	t.Helper()
	st, out, _ := bearerPost(t, s.issuer+"/apikeys/self/rotate", key, nil)
	succ, _ := out["api_key"].(string)
	return st, succ
}

func TestE2EAPIKeyChainContainment(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	admin := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops",
		"--scopes", "admin:apikeys admin:clients:write admin:clients:read")
	revoke := func(t *testing.T, id string) int {
		st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/apikeys/"+id+"/revoke", admin, "")
		if st >= 500 {
			t.Errorf("revoke %s: %d %v", id, st, out)
		}
		return st
	}
	inactive := func(t *testing.T, what, tok string) {
		t.Helper()
		if in := s.introspect(tok); in["active"] != false {
			t.Fatalf("%s still active: %v", what, in)
		}
	}

	t.Run("case=revoking a rotated key revokes its successor", func(t *testing.T) {
		k1 := cliCreateKey(t, dsn, "--name", "a", "--owner-type", "service", "--owner-id", "chain-a", "--scopes", "introspect")
		st, k2 := selfRotate(t, s, k1)
		if st != 200 || k2 == "" {
			t.Fatalf("self rotate: %d", st)
		}
		if in := s.introspect(k2); in["active"] != true {
			t.Fatalf("successor inactive before revocation: %v", in)
		}
		if st := revoke(t, keyID(t, k1)); st != 200 {
			t.Fatalf("revoke: %d", st)
		}
		inactive(t, "predecessor", k1)
		inactive(t, "successor", k2)
	})

	t.Run("case=revoking the successor revokes the predecessor in its grace period", func(t *testing.T) {
		k1 := cliCreateKey(t, dsn, "--name", "b", "--owner-type", "service", "--owner-id", "chain-b", "--scopes", "introspect")
		_, k2 := selfRotate(t, s, k1)
		if in := s.introspect(k1); in["active"] != true {
			t.Fatalf("predecessor inactive during grace: %v", in)
		}
		if st := revoke(t, keyID(t, k2)); st != 200 {
			t.Fatalf("revoke: %d", st)
		}
		inactive(t, "predecessor", k1)
		inactive(t, "successor", k2)
	})

	t.Run("case=a token exchanged from a key dies with the key", func(t *testing.T) {
		k := cliCreateKey(t, dsn, "--name", "x", "--owner-type", "client", "--owner-id", "svc", "--scopes", "introspect")
		st, out := s.post("/oauth2/token", url.Values{
			"grant_type": {GrantTypeTokenExchangeForTest}, "subject_token": {k},
			"subject_token_type": {"urn:bulwark:params:oauth:token-type:api-key"}, "scope": {"api:read"},
		}, "", "")
		at, _ := out["access_token"].(string)
		if st != 200 || at == "" {
			t.Fatalf("exchange: %d %v", st, out)
		}
		if in := s.introspect(at); in["active"] != true {
			t.Fatalf("exchanged token inactive before revocation: %v", in)
		}
		if st := revoke(t, keyID(t, k)); st != 200 {
			t.Fatalf("revoke: %d", st)
		}
		inactive(t, "exchanged token", at)
		// The client's own tokens are not affected.
		if in := s.introspect(k); in["active"] != false {
			t.Fatalf("revoked key active: %v", in)
		}
	})

	t.Run("case=parallel revokes and rotations end with the whole chain revoked", func(t *testing.T) {
		for round := range 3 {
			owner := fmt.Sprintf("race-chain-%d", round)
			k := cliCreateKey(t, dsn, "--name", owner, "--owner-type", "service", "--owner-id", owner, "--scopes", "introspect")
			id := keyID(t, k)
			type res struct {
				status int
				succ   string
			}
			results := storagetest.Together(e2eRacers, func(i int) res {
				if i%2 == 0 {
					return res{status: revoke(t, id)}
				}
				st, succ := selfRotate(t, s, k)
				return res{st, succ}
			})
			for _, r := range results {
				if r.status >= 500 {
					t.Fatalf("round %d: a request answered %d", round, r.status)
				}
				if r.succ != "" {
					inactive(t, "successor handed out during the race", r.succ)
				}
			}
			if live := liveOwnerKeys(t, s, "service", owner); len(live) != 0 {
				t.Fatalf("round %d: keys survived: %v", round, live)
			}
		}
	})

	t.Run("case=the sealed handover of a scheduled rotation is collected once", func(t *testing.T) {
		ctx := context.Background()
		k := cliCreateKey(t, dsn, "--name", "sched", "--owner-type", "service", "--owner-id", "handover", "--scopes", "introspect")
		row, err := s.app.store.APIKeyByID(ctx, keyID(t, k))
		if err != nil {
			t.Fatal(err)
		}
		row.RotateAt = row.CreatedAt // due now
		if err := s.app.store.UpdateAPIKey(ctx, row, row.Version); err != nil {
			t.Fatal(err)
		}
		if err := s.app.apiKeys.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if row, _ = s.app.store.APIKeyByID(ctx, row.ID); row.Status != storage.APIKeyRotating || len(row.SealedSuccessorSecret) == 0 {
			t.Fatalf("scheduled rotation did not seal a successor: %s", row.Status)
		}
		type res struct {
			status int
			succ   string
		}
		results := storagetest.Together(e2eRacers, func(int) res {
			st, succ := selfRotate(t, s, k)
			return res{st, succ}
		})
		got := storagetest.Count(results, func(r res) bool { return r.status == 200 && r.succ != "" })
		refused := storagetest.Count(results, func(r res) bool { return r.status == http.StatusConflict })
		if got != 1 || refused != e2eRacers-1 {
			t.Fatalf("handover: %d collected, %d refused, want 1 and %d: %v", got, refused, e2eRacers-1, results)
		}
		for _, r := range results {
			if r.succ != "" {
				if in := s.introspect(r.succ); in["active"] != true {
					t.Fatalf("collected successor inactive: %v", in)
				}
			}
		}
	})

	t.Run("case=disabling an owner while its key rotates leaves no key alive", func(t *testing.T) {
		for round := range 3 {
			st, c := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients", admin,
				`{"client_name":"race","grant_types":["client_credentials"],"scope":"api:read","token_endpoint_auth_method":"client_secret_basic"}`)
			if st != http.StatusCreated {
				t.Fatalf("create client: %d %v", st, c)
			}
			cid, _ := c["client_id"].(string)
			k := cliCreateKey(t, dsn, "--name", "owned", "--owner-type", "client", "--owner-id", cid, "--scopes", "introspect")
			var succs []string
			var mu sync.Mutex
			statuses := storagetest.Together(e2eRacers, func(i int) int {
				if i == 0 {
					st, _ := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients/"+cid+"/disable", admin, "")
					return st
				}
				st, succ := selfRotate(t, s, k)
				if succ != "" {
					mu.Lock()
					succs = append(succs, succ)
					mu.Unlock()
				}
				return st
			})
			if statuses[0] != 200 {
				t.Fatalf("round %d: disable answered %d", round, statuses[0])
			}
			if n := storagetest.Count(statuses, func(st int) bool { return st >= 500 }); n != 0 {
				t.Fatalf("round %d: %d requests answered 5xx: %v", round, n, statuses)
			}
			if live := liveOwnerKeys(t, s, "client", cid); len(live) != 0 {
				t.Fatalf("round %d: keys of a disabled client survived: %v", round, live)
			}
			for _, succ := range succs {
				inactive(t, "successor minted during containment", succ)
			}
		}
	})
}

// GrantTypeTokenExchangeForTest is RFC 8693's grant type URN.
const GrantTypeTokenExchangeForTest = "urn:ietf:params:oauth:grant-type:token-exchange"

func TestE2ESigningKeyRevocationNeverLeavesNoActiveKey(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	admin := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:keys")
	ctx := context.Background()

	var (
		stop      atomic.Bool
		bad, seen atomic.Int64
		wg        sync.WaitGroup
	)
	wg.Add(1)
	go func() { // observes the table, one statement per look
		defer wg.Done()
		for !stop.Load() {
			rows, err := s.app.store.ListSigningKeys(ctx)
			if err != nil {
				bad.Add(1)
				continue
			}
			n := 0
			for _, k := range rows {
				if k.Algorithm == "ES256" && k.State == storage.KeyActive {
					n++
				}
			}
			seen.Add(1)
			if n != 1 {
				bad.Add(1)
			}
		}
	}()
	for round := range 3 {
		active := keysByState(t, s, "ES256")[storage.KeyActive]
		if len(active) != 1 {
			t.Fatalf("round %d: %d active ES256 keys before the race", round, len(active))
		}
		kid := active[0].KID
		statuses := storagetest.Together(e2eRacers, func(int) int {
			st, _ := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/keys/"+kid+"/revoke", admin, "")
			return st
		})
		if n := storagetest.Count(statuses, func(st int) bool { return st == 200 }); n != 1 {
			t.Fatalf("round %d: %d revocations succeeded, want 1: %v", round, n, statuses)
		}
		if n := storagetest.Count(statuses, func(st int) bool { return st == 200 || st == 404 }); n != e2eRacers {
			t.Fatalf("round %d: answers other than 200/404: %v", round, statuses)
		}
		after := keysByState(t, s, "ES256")
		if len(after[storage.KeyActive]) != 1 || after[storage.KeyActive][0].KID == kid || len(after[storage.KeyNext]) != 1 {
			t.Fatalf("round %d: after revocation active=%d next=%d", round, len(after[storage.KeyActive]), len(after[storage.KeyNext]))
		}
		// Tokens are signed by the new key at once.
		tok, err := s.app.ring.SigningKey("ES256")
		if err != nil || tok.KeyID == kid {
			t.Fatalf("round %d: ring signs with %v (%v)", round, tok, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if seen.Load() == 0 {
		t.Fatal("the observer never looked")
	}
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d of %d observations did not show exactly one active ES256 key", n, seen.Load())
	}
}

// rawRequest sends a hand-written HTTP/1.1 request, so header bytes Go's
// client refuses to send (0xff) reach the server, and returns the status.
func rawRequest(t *testing.T, base, req string) int {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

func TestE2EFailedAuthenticationIsAuditedWithoutSecret(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	ctx := context.Background()
	real := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:audit:read")
	id := keyID(t, real)
	// A well-formed key with the right id and a wrong secret, a
	// well-formed key of an unknown id, a broken checksum, and garbage.
	other, err := apikey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := apikey.Key{ID: id, Secret: other.Secret}.String()
	unknownID := other.String()
	presented := []string{wrongSecret, "not-an-api-key-secret-0123456789", unknownID, real[:len(real)-3] + "AAA"}
	for _, p := range presented {
		if st, _ := adminDo(t, http.MethodGet, s.adminURL+"/admin/v1/audit", p, ""); st != http.StatusUnauthorized {
			t.Fatalf("bad key answered %d", st)
		}
	}
	// A User-Agent with byte 0xff reaches the server only on a raw
	// connection; the pipeline refuses it at the door (400) before any
	// authentication, so it leaves no auth event (the sink's sanitizing is
	// the second line, tested by TestBadBytesNeverLoseTheEvent).
	st := rawRequest(t, s.adminURL, "GET /admin/v1/audit HTTP/1.1\r\nHost: x\r\nUser-Agent: probe-\xff-ua\r\n"+
		"Authorization: Bearer "+presented[1]+"\r\nConnection: close\r\n\r\n")
	if st != http.StatusBadRequest {
		t.Fatalf("raw request with a 0xff User-Agent answered %d; want 400 at the door", st)
	}
	// The self-rotation endpoint counts too.
	if st, _, _ := bearerPost(t, s.issuer+"/apikeys/self/rotate", presented[0], nil); st != http.StatusUnauthorized {
		t.Fatalf("self-rotate with a bad key: %d", st)
	}

	events, err := s.app.store.ListAudit(ctx, storage.AuditFilter{Event: apikeyauth.EventAuthFailed})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != len(presented)+1 {
		t.Fatalf("%d auth failure events, want %d", len(events), len(presented)+1)
	}
	for _, e := range events {
		if e.Actor != "unknown" || e.Outcome != "failure" || e.SourceIP == "" || e.Details["reason"] == "" {
			t.Fatalf("auth failure event lacks actor/outcome/source/reason: %+v", e)
		}
	}
	raw, _ := json.Marshal(events)
	logs := s.logs.String()
	for _, p := range presented {
		secret := p[max(0, len(p)-20):]
		if strings.Contains(string(raw), secret) || strings.Contains(logs, secret) {
			t.Fatalf("a presented key (%d chars) appears in the audit trail or the logs", len(p))
		}
	}
}
