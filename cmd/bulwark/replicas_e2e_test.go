package main

// Three replicas of the assembled server on one Postgres database, sharing
// one clock: scheduled rotation happens exactly once however many replicas
// tick at the same instant, every replica converges on the same key set,
// tokens cross replicas, an emergency revocation reaches every replica, and
// no private key sits readable in the signing_keys table; tokens revoked
// through one replica are inactive on all, and API-key rotation and the
// janitor, run by all three at once, do their work exactly once.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// convergeWithin bounds how long a change made on one replica may take to
// reach the others (LISTEN/NOTIFY; the periodic reload is 30 s, so passing
// within this bound shows the notification path works).
const convergeWithin = 10 * time.Second

// runRing runs s's key ring background job (Tick timer, reload on
// notification, periodic reload) until the test ends. app.Run cannot be
// used: it also binds the listeners.
func runRing(t *testing.T, s *e2eServer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.app.ring.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// keysByState lists the signing keys of alg by state.
func keysByState(t *testing.T, s *e2eServer, alg string) map[storage.KeyState][]*storage.SigningKey {
	t.Helper()
	rows, err := s.app.store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[storage.KeyState][]*storage.SigningKey{}
	for _, k := range rows {
		if k.Algorithm == alg {
			out[k.State] = append(out[k.State], k)
		}
	}
	return out
}

// jwksKIDs parses a JWKS body into its kids, failing on any private part.
func jwksKIDs(t *testing.T, body []byte) map[string]bool {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS does not parse: %v", err)
	}
	out := map[string]bool{}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatalf("JWKS publishes a private key (kid %s)", k.KeyID)
		}
		out[k.KeyID] = true
	}
	return out
}

// eventually polls cond until it holds or convergeWithin passes, and
// returns whether it held.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(convergeWithin)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fetchJWKS reads a replica's published JWKS over HTTP.
func fetchJWKS(t *testing.T, s *e2eServer) []byte {
	t.Helper()
	res, err := http.Get(s.issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("JWKS: %d %v", res.StatusCode, err)
	}
	return body
}

func TestE2EThreeReplicasRotateOnce(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	const rotation = 30 * 24 * time.Hour // KeyRotation in startE2E
	// Start a rotation period (plus two minutes) in the past, so that after
	// the advance the clock is a minute behind real time: fosite and jwx
	// check exp/iat against the real clock.
	clock := &fakeClock{t: time.Now().Add(-rotation - 2*time.Minute)}
	withClock := func(c *config) { c.now = clock.Now }
	reps := []*e2eServer{startE2E(t, dsn, withClock), startE2E(t, dsn, withClock), startE2E(t, dsn, withClock)}
	for _, s := range reps {
		runRing(t, s)
	}
	algs := []string{keys.ES256, keys.RS256}

	// Before: one active and one next key per algorithm, created by
	// whichever replica bootstrapped first and found by the others.
	oldActive, oldNext := map[string]string{}, map[string]string{}
	for _, alg := range algs {
		st := keysByState(t, reps[0], alg)
		if len(st[storage.KeyActive]) != 1 || len(st[storage.KeyNext]) != 1 || len(st) != 2 {
			t.Fatalf("%s after bootstrap of three replicas: %d active, %d next, %d states; want one active and one next",
				alg, len(st[storage.KeyActive]), len(st[storage.KeyNext]), len(st))
		}
		oldActive[alg], oldNext[alg] = st[storage.KeyActive][0].KID, st[storage.KeyNext][0].KID
	}

	// Past the rotation period, all three replicas tick at the same instant.
	clock.Advance(rotation + time.Minute)
	rotatedAt := clock.Now()
	start := make(chan struct{})
	errs := make([]error, len(reps))
	var wg sync.WaitGroup
	for i, s := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = s.app.ring.Tick(ctx)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Tick: %v", i+1, err)
		}
	}

	t.Run("case=exactly one activation per algorithm", func(t *testing.T) {
		for _, alg := range algs {
			st := keysByState(t, reps[0], alg)
			if len(st[storage.KeyActive]) != 1 || len(st[storage.KeyNext]) != 1 || len(st[storage.KeyRetired]) != 1 || len(st) != 3 {
				t.Fatalf("%s after three simultaneous ticks: %d active, %d next, %d retired, %d states; want one of each",
					alg, len(st[storage.KeyActive]), len(st[storage.KeyNext]), len(st[storage.KeyRetired]), len(st))
			}
			if got := st[storage.KeyActive][0].KID; got != oldNext[alg] {
				t.Errorf("%s: active kid %s, want the published next key %s", alg, got, oldNext[alg])
			}
			if got := st[storage.KeyRetired][0].KID; got != oldActive[alg] {
				t.Errorf("%s: retired kid %s, want the old active key %s", alg, got, oldActive[alg])
			}
		}
		// The audit trail agrees: one next→active transition per algorithm.
		events, err := reps[0].app.store.ListAudit(ctx, storage.AuditFilter{Event: "signing_key.active", Since: rotatedAt, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		perAlg := map[string]int{}
		for _, ev := range events {
			perAlg[ev.Details["alg"]]++
			if ev.Details["from"] != string(storage.KeyNext) || ev.Actor != "schedule" {
				t.Errorf("unexpected activation event: %+v", ev)
			}
		}
		for _, alg := range algs {
			if perAlg[alg] != 1 {
				t.Errorf("%s: %d signing_key.active events since the tick, want 1 (all: %v)", alg, perAlg[alg], perAlg)
			}
		}
		if len(events) != len(algs) {
			t.Errorf("%d activation events, want %d", len(events), len(algs))
		}
	})

	// Every replica converges on the same JWKS, holding the new active keys.
	newActive := map[string]string{}
	for _, alg := range algs {
		newActive[alg] = keysByState(t, reps[0], alg)[storage.KeyActive][0].KID
	}
	converged := eventually(func() bool {
		first, _ := reps[0].app.ring.JWKS()
		for _, s := range reps {
			body, _ := s.app.ring.JWKS()
			if !bytes.Equal(body, first) {
				return false
			}
			for _, alg := range algs {
				if k, err := s.app.ring.SigningKey(alg); err != nil || k.KeyID != newActive[alg] {
					return false
				}
			}
		}
		return true
	})
	if !converged {
		for i, s := range reps {
			body, _ := s.app.ring.JWKS()
			t.Logf("replica %d JWKS kids: %v", i+1, jwksKIDs(t, body))
		}
		t.Fatalf("replicas did not converge on one JWKS and signing key within %s", convergeWithin)
	}
	for i, s := range reps {
		body, _ := s.app.ring.JWKS()
		kids := jwksKIDs(t, body)
		for _, alg := range algs {
			if !kids[newActive[alg]] || !kids[oldActive[alg]] {
				t.Fatalf("replica %d JWKS %v lacks the new active %s key %s or the retired one %s", i+1, kids, alg, newActive[alg], oldActive[alg])
			}
		}
		if served := fetchJWKS(t, s); !bytes.Equal(served, body) {
			t.Fatalf("replica %d serves a JWKS other than its ring's", i+1)
		}
	}

	// A token from each replica, checked on every other one.
	tokens := make([]string, len(reps))
	for i, s := range reps {
		cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e2eSvcSecret, TokenURL: s.issuer + "/oauth2/token", Scopes: []string{"api:read"}}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("replica %d: client credentials: %v", i+1, err)
		}
		tokens[i] = tok.AccessToken
	}
	t.Run("case=tokens cross replicas", func(t *testing.T) {
		for i, tok := range tokens {
			for j, other := range reps {
				if i == j {
					continue
				}
				if in := other.introspect(tok); in["active"] != true || in["client_id"] != "svc" {
					t.Errorf("token of replica %d on replica %d: %v", i+1, j+1, in)
				}
				set, err := jwk.Parse(fetchJWKS(t, other))
				if err != nil {
					t.Fatalf("replica %d JWKS: %v", j+1, err)
				}
				parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithIssuer(reps[i].issuer), jwt.WithValidate(true))
				if err != nil {
					t.Errorf("jwx rejects the token of replica %d with the JWKS of replica %d: %v", i+1, j+1, err)
					continue
				}
				if sub, _ := parsed.Subject(); sub != "svc" {
					t.Errorf("sub = %q", sub)
				}
			}
			if kid := kidOfToken(t, tok); kid != newActive[keys.ES256] {
				t.Errorf("token of replica %d signed by %s, want the new active ES256 key %s", i+1, kid, newActive[keys.ES256])
			}
		}
	})

	t.Run("case=emergency revocation on one replica reaches all", func(t *testing.T) {
		kid := newActive[keys.ES256]
		if err := reps[0].app.ring.Revoke(ctx, kid, "test"); err != nil {
			t.Fatal(err)
		}
		gone := eventually(func() bool {
			for _, s := range reps {
				body, _ := s.app.ring.JWKS()
				if jwksKIDs(t, body)[kid] {
					return false
				}
				if _, ok := s.app.ring.VerificationKey(kid); ok {
					return false
				}
			}
			return true
		})
		if !gone {
			t.Fatalf("revoked kid %s still published by a replica after %s", kid, convergeWithin)
		}
		for i, s := range reps {
			if jwksKIDs(t, fetchJWKS(t, s))[kid] {
				t.Errorf("replica %d still serves the revoked kid over HTTP", i+1)
			}
			for j, tok := range tokens {
				if in := s.introspect(tok); len(in) != 1 || in["active"] != false {
					t.Errorf("token of replica %d signed by the revoked key, on replica %d: %v, want exactly {active:false}", j+1, i+1, in)
				}
			}
		}
		// Signing goes on with a replacement key on every replica.
		for i, s := range reps {
			cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e2eSvcSecret, TokenURL: s.issuer + "/oauth2/token"}
			var tok string
			ok := eventually(func() bool {
				got, err := cc.Token(ctx)
				if err != nil {
					return false
				}
				tok = got.AccessToken
				return kidOfToken(t, tok) != kid
			})
			if !ok {
				t.Fatalf("replica %d still signs with the revoked key", i+1)
			}
			for j, other := range reps {
				if in := other.introspect(tok); in["active"] != true {
					t.Errorf("post-revocation token of replica %d on replica %d: %v", i+1, j+1, in)
				}
			}
		}
	})

	t.Run("case=no private key readable in signing_keys", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, "SELECT * FROM signing_keys")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n, cells := 0, 0
		for rows.Next() {
			n++
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			for i, fd := range rows.FieldDescriptions() {
				var raw []byte
				switch v := vals[i].(type) {
				case []byte:
					raw = v
				case string:
					raw = []byte(v)
				default:
					continue
				}
				cells++
				if what := privateKeyIn(raw); what != "" {
					t.Errorf("row %d column %s holds a readable private key (%s)", n, fd.Name, what)
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		// Two algorithms, each: retired, revoked or active, next, and the
		// replacement after revocation — at least five rows.
		if n < 5 || cells < 5*5 {
			t.Fatalf("inspected %d rows and %d text/bytea cells; the table is not what this test expects", n, cells)
		}
	})
}

// kidOfToken returns the kid in a JWS compact token's header.
func kidOfToken(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS (%d parts)", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.KID
}

// privateKeyIn reports whether raw is, or encodes, a private key: DER in
// PKCS#8, PKCS#1 or SEC 1, possibly inside PEM or base64, or a JWK with a
// private part. It returns what it found, or "".
func privateKeyIn(raw []byte) string {
	candidates := [][]byte{raw}
	if b, _ := pem.Decode(raw); b != nil {
		candidates = append(candidates, b.Bytes)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(string(bytes.TrimSpace(raw))); err == nil {
			candidates = append(candidates, d)
			if b, _ := pem.Decode(d); b != nil {
				candidates = append(candidates, b.Bytes)
			}
		}
	}
	for _, c := range candidates {
		if _, err := x509.ParsePKCS8PrivateKey(c); err == nil {
			return "PKCS#8"
		}
		if _, err := x509.ParsePKCS1PrivateKey(c); err == nil {
			return "PKCS#1"
		}
		if _, err := x509.ParseECPrivateKey(c); err == nil {
			return "SEC 1"
		}
		var k jose.JSONWebKey
		if err := json.Unmarshal(c, &k); err == nil && k.Key != nil && !k.IsPublic() {
			return "private JWK"
		}
	}
	return ""
}

// Three replicas share the work: a token issued on any replica is revoked
// through any other and is then inactive on all three; and the scheduled
// jobs (API-key rotation, the janitor) run by all three at the same
// instant do their work exactly once. (Signing-key rotation is counted in
// TestE2EThreeReplicasRotateOnce.)
func TestE2EThreeReplicasShareWork(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	clock := &fakeClock{t: time.Now()}
	withClock := func(c *config) { c.now = clock.Now }
	reps := []*e2eServer{startE2E(t, dsn, withClock), startE2E(t, dsn, withClock), startE2E(t, dsn, withClock)}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	t.Run("case=a token revoked on another replica is inactive everywhere", func(t *testing.T) {
		for i, issuer := range reps {
			status, out := issuer.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}, "svc", e2eSvcSecret)
			tok, _ := out["access_token"].(string)
			if status != http.StatusOK || tok == "" {
				t.Fatalf("replica %d: token: %d %v", i+1, status, out)
			}
			for j, s := range reps {
				if !activeIn(s, tok) {
					t.Fatalf("token of replica %d inactive on replica %d before revocation", i+1, j+1)
				}
			}
			revoker := reps[(i+1)%len(reps)]
			if status, out := revoker.post("/oauth2/revoke", url.Values{"token": {tok}}, "svc", e2eSvcSecret); status != http.StatusOK {
				t.Fatalf("revoke on replica %d: %d %v", (i+1)%len(reps)+1, status, out)
			}
			for j, s := range reps {
				if activeIn(s, tok) {
					t.Fatalf("token of replica %d, revoked on replica %d, still active on replica %d", i+1, (i+1)%len(reps)+1, j+1)
				}
			}
		}
	})

	t.Run("case=API keys due for rotation are rotated once", func(t *testing.T) {
		const k = 6
		ids := make([]string, k)
		for i := range ids {
			_, key, err := reps[i%3].app.apiKeys.Create(ctx, apikeys.CreateRequest{
				Name: fmt.Sprintf("rot-%d", i), OwnerType: apikeys.OwnerService, OwnerID: "batch",
				Scopes: []string{apikeys.ScopeIntrospect}, RotationPeriod: 24 * time.Hour, GracePeriod: time.Hour, CreatedBy: "test",
			})
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = key.ID
		}
		clock.Advance(24*time.Hour + time.Minute)
		errs := storagetest.Together(len(reps), func(i int) error { return reps[i].app.apiKeys.Tick(ctx) })
		for i, err := range errs {
			if err != nil {
				t.Fatalf("replica %d: Tick: %v", i+1, err)
			}
		}
		for _, id := range ids {
			var successors, rotations int
			if err := pool.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM api_keys WHERE replaces_id = $1),
				(SELECT count(*) FROM audit_events WHERE event = 'apikey.rotate' AND details->>'key_id' = $1)`, id).
				Scan(&successors, &rotations); err != nil {
				t.Fatal(err)
			}
			if successors != 1 || rotations != 1 {
				t.Fatalf("key %s: %d successors, %d rotation events; want exactly one of each", id, successors, rotations)
			}
		}
	})

	t.Run("case=the janitor deletes expired rows once", func(t *testing.T) {
		const n = 5000
		now := clock.Now()
		if _, err := pool.Exec(ctx, `INSERT INTO token_sessions (kind, key, request_id, client_id, subject, active, requested_at, expires_at, data)
			SELECT 'access', 'expired-' || g, 'req-' || g, 'svc', '', true, $1::timestamptz - interval '2 hours', $1::timestamptz - interval '1 hour', '{}'::jsonb
			FROM generate_series(1, $2::int) g`, now, n); err != nil {
			t.Fatal(err)
		}
		type round struct {
			expired int64
			ran     bool
			err     error
		}
		res := storagetest.Together(len(reps), func(i int) round {
			// A batch far below n: the winner holds the lock across many
			// batches, the others find it held or find nothing left.
			expired, _, ran, err := janitorOnce(ctx, reps[i].app.store, now, retention{}, 500, reps[i].app.log)
			return round{expired, ran, err}
		})
		var total int64
		deleters := 0
		for i, r := range res {
			if r.err != nil {
				t.Fatalf("replica %d: janitor: %v", i+1, r.err)
			}
			total += r.expired
			if r.expired > 0 {
				deleters++
			}
		}
		var left int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM token_sessions WHERE key LIKE 'expired-%'`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		// total may include a few rows the earlier cases left to expire
		// (the clock moved a day).
		if total < n || deleters != 1 || left != 0 {
			t.Fatalf("deleted %d rows (%d inserted) by %d replicas, %d left; want all by exactly one", total, n, deleters, left)
		}
	})
}
