package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

func TestOpenUnreachableIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there.
	_, err := postgres.Open(ctx, postgres.Config{DSN: "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Open(unreachable) = %v; want ErrUnavailable", err)
	}
}

func TestUniqueViolationIsConflict(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	if err := s.CreateClient(ctx, &storage.Client{ID: "c1"}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate client = %v", err)
	}
	must(t, s.CreateUser(ctx, &storage.User{ID: "u1", Username: "Alice"}))
	if err := s.CreateUser(ctx, &storage.User{ID: "u2", Username: "aLICE"}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate username in other case = %v", err)
	}
	u, err := s.UserByUsername(ctx, "ALICE")
	if err != nil || u.ID != "u1" {
		t.Fatalf("case-insensitive lookup = %v, %v", u, err)
	}
}

// A real deadlock between two transactions surfaces as
// fosite.ErrSerializationFailure on the victim.
func TestDeadlockIsSerializationFailure(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	must(t, s.CreateClient(ctx, &storage.Client{ID: "c2"}))
	tx1, err := s.BeginTX(ctx)
	must(t, err)
	tx2, err := s.BeginTX(ctx)
	must(t, err)
	upd := func(ctx context.Context, id string) error {
		c, err := s.ClientByID(ctx, id)
		if err != nil {
			return err
		}
		return s.UpdateClient(ctx, c, c.Version)
	}
	must(t, upd(tx1, "c1"))
	must(t, upd(tx2, "c2"))
	errs := make(chan error, 2)
	go func() { errs <- upd(tx1, "c2") }()
	go func() { errs <- upd(tx2, "c1") }()
	e1, e2 := <-errs, <-errs
	var victim error
	for _, e := range []error{e1, e2} {
		if e != nil {
			victim = e
		}
	}
	if !errors.Is(victim, fosite.ErrSerializationFailure) {
		t.Fatalf("deadlock errors = %v, %v; want one ErrSerializationFailure", e1, e2)
	}
	_ = s.Rollback(tx1)
	_ = s.Rollback(tx2)
}

func TestTransactionRollbackAndCommit(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)

	tx, err := s.BeginTX(ctx)
	must(t, err)
	must(t, s.CreateAccessTokenSession(tx, "in-tx", newRequest("r1", "alice")))
	if _, err := s.GetAccessTokenSession(tx, "in-tx", nil); err != nil {
		t.Fatalf("row invisible inside its own transaction: %v", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "in-tx", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("uncommitted row visible outside: %v", err)
	}
	must(t, s.Rollback(tx))
	if _, err := s.GetAccessTokenSession(ctx, "in-tx", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("rolled back row present: %v", err)
	}

	tx, err = s.BeginTX(ctx)
	must(t, err)
	must(t, s.CreateRefreshTokenSession(tx, "rt", "at", newRequest("r2", "alice")))
	must(t, s.RotateRefreshToken(tx, "r2", "rt")) // multi-statement op joins the caller's tx
	must(t, s.Rollback(tx))
	if _, err := s.GetRefreshTokenSession(ctx, "rt", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("rotation inside rolled back tx left rows: %v", err)
	}

	tx, err = s.BeginTX(ctx)
	must(t, err)
	must(t, s.CreateAccessTokenSession(tx, "committed", newRequest("r3", "alice")))
	must(t, s.Commit(tx))
	if _, err := s.GetAccessTokenSession(ctx, "committed", nil); err != nil {
		t.Fatalf("committed row missing: %v", err)
	}
	if err := s.Commit(ctx); err == nil {
		t.Fatal("Commit without a transaction succeeded")
	}
}

func TestVersionedUpdates(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	c, err := s.ClientByID(ctx, "c1")
	must(t, err)
	if c.Version != 1 {
		t.Fatalf("new client version = %d", c.Version)
	}
	c.Name = "renamed"
	c.RedirectURIs = []string{"https://app.example/cb"}
	must(t, s.UpdateClient(ctx, c, 1))
	if c.Version != 2 {
		t.Fatalf("version after update = %d", c.Version)
	}
	if err := s.UpdateClient(ctx, c, 1); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("stale update = %v", err)
	}
	if err := s.UpdateClient(ctx, &storage.Client{ID: "ghost"}, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("update unknown = %v", err)
	}
	got, err := s.ClientByID(ctx, "c1")
	must(t, err)
	if got.Name != "renamed" || got.Version != 2 || len(got.RedirectURIs) != 1 || got.GrantTypes[0] != "client_credentials" {
		t.Fatalf("stored client = %+v", got)
	}
	list, err := s.ListClients(ctx, storage.ListOptions{NameContains: "NAME"})
	if err != nil || len(list) != 1 {
		t.Fatalf("list by name = %v, %v", list, err)
	}
}

func TestSigningKeyTransitionRace(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	must(t, s.CreateSigningKey(ctx, &storage.SigningKey{KID: "k1", Algorithm: "ES256", State: storage.KeyNext,
		PublicJWK: []byte(`{}`), SealedPrivate: []byte{1, 2, 3}}))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok, pre int
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.TransitionSigningKey(ctx, "k1", storage.KeyNext, storage.KeyActive, time.Now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, storage.ErrPreconditionFailed):
				pre++
			default:
				t.Errorf("transition: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || pre != 3 {
		t.Fatalf("transitions: %d succeeded, %d precondition failed; want 1 and 3", ok, pre)
	}
	keys, err := s.ListSigningKeys(ctx)
	must(t, err)
	if len(keys) != 1 || keys[0].State != storage.KeyActive || keys[0].ActivatedAt.IsZero() || !keys[0].RetiredAt.IsZero() {
		t.Fatalf("keys = %+v", keys[0])
	}
	if err := s.TransitionSigningKey(ctx, "nope", storage.KeyNext, storage.KeyActive, time.Now()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown kid = %v", err)
	}
}

// Two stores on one database behave like two replicas.
func TestAdvisoryLockAcrossReplicas(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := pgtest.OpenStore(t, dsn, nil), pgtest.OpenStore(t, dsn, nil)
	ctx := ctxT(t)
	release, ok, err := a.TryLock(ctx, "janitor")
	if err != nil || !ok {
		t.Fatalf("first lock = %v, %v", ok, err)
	}
	if _, ok, err := b.TryLock(ctx, "janitor"); err != nil || ok {
		t.Fatalf("second replica got a held lock: %v, %v", ok, err)
	}
	if _, ok, err := a.TryLock(ctx, "janitor"); err != nil || ok {
		t.Fatalf("same replica got a held lock twice: %v, %v", ok, err)
	}
	relOther, ok, err := b.TryLock(ctx, "key-rotation")
	if err != nil || !ok {
		t.Fatalf("a different lock name must be free: %v, %v", ok, err)
	}
	relOther()
	release()
	release() // idempotent
	rel2, ok, err := b.TryLock(ctx, "janitor")
	if err != nil || !ok {
		t.Fatalf("lock after release = %v, %v", ok, err)
	}
	rel2()
}

func TestNotifyAcrossReplicasAndReconnect(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := pgtest.OpenStore(t, dsn, nil), pgtest.OpenStore(t, dsn, nil)
	ctx, cancel := context.WithCancel(ctxT(t))
	ch, err := b.Subscribe(ctx, "bulwark_keys")
	must(t, err)

	must(t, a.Notify(ctxT(t), "bulwark_keys", "ring-changed"))
	select {
	case got := <-ch:
		if got != "ring-changed" {
			t.Fatalf("payload = %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("notification not delivered")
	}

	// A notification inside a rolled back transaction is never delivered.
	tx, err := a.BeginTX(ctxT(t))
	must(t, err)
	must(t, a.Notify(tx, "bulwark_keys", "rolled-back"))
	must(t, a.Rollback(tx))

	// Kill exactly the listening session, and wait until its backend is gone:
	// a backend that is still shutting down could otherwise deliver the next
	// notification itself. Subscribe must then reconnect by itself.
	rows, err := a.Pool().Query(ctxT(t), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1`, postgres.ListenApplicationName)
	must(t, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	must(t, err)
	if len(pids) != 1 {
		t.Fatalf("listening sessions = %v; want exactly one", pids)
	}
	var terminated bool
	must(t, a.Pool().QueryRow(ctxT(t), `SELECT pg_terminate_backend($1)`, pids[0]).Scan(&terminated))
	if !terminated {
		t.Fatal("pg_terminate_backend refused")
	}
	waitUntil(t, 30*time.Second, "the killed LISTEN backend to exit", func() bool {
		var alive bool
		must(t, a.Pool().QueryRow(ctxT(t), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, pids[0]).Scan(&alive))
		return !alive
	})
	deadline := time.After(60 * time.Second)
	sawReload := false
	for delivered := false; !delivered; {
		must(t, a.Notify(ctxT(t), "bulwark_keys", "after-reconnect"))
		select {
		case got := <-ch:
			if got == "rolled-back" {
				t.Fatal("rolled back notification delivered")
			}
			if got == "" {
				sawReload = true
			}
			delivered = got == "after-reconnect"
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no notification after the LISTEN connection was killed")
		}
	}
	if !sawReload {
		t.Fatal("after a reconnect the subscriber must get an empty \"reload everything\" payload")
	}
	cancel()
	for range ch { // drains, and returns once the channel closes
	}
}

func TestAuditAppendOnly(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	old := time.Now().Add(-48 * time.Hour)
	for i, at := range []time.Time{old, old, time.Now()} {
		e := &storage.AuditEvent{Time: at, Event: "token.issued", Actor: "c1", Details: map[string]string{"n": string(rune('a' + i))}}
		must(t, s.AppendAudit(ctx, e))
		if e.ID == 0 {
			t.Fatal("AppendAudit did not set ID")
		}
	}
	_, err := s.Pool().Exec(ctx, `UPDATE audit_events SET actor = 'mallory'`)
	if err == nil || !strings.Contains(err.Error(), "42501") {
		t.Fatalf("UPDATE on audit_events = %v; want refused", err)
	}
	list, err := s.ListAudit(ctx, storage.AuditFilter{Actor: "c1", Limit: 2})
	must(t, err)
	if len(list) != 2 || list[0].ID <= list[1].ID || list[0].Details["n"] != "c" {
		t.Fatalf("ListAudit newest first = %+v", list)
	}
	n, err := s.TrimAudit(ctx, time.Now().Add(-time.Hour), 1)
	if err != nil || n != 2 {
		t.Fatalf("TrimAudit = %d, %v; want 2", n, err)
	}
}

func TestDeleteExpiredInBatches(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	for i := range 25 {
		r := newRequest("old", "alice")
		r.Session.SetExpiresAt(fosite.AccessToken, time.Now().Add(-time.Hour))
		must(t, s.CreateAccessTokenSession(ctx, "expired-"+string(rune('a'+i)), r))
	}
	must(t, s.CreateAccessTokenSession(ctx, "live", newRequest("new", "alice")))
	must(t, s.SetClientAssertionJWT(ctx, "old-jti", time.Now().Add(-time.Minute)))
	must(t, s.PutBlock(ctx, &storage.Block{Kind: "ip", Value: "192.0.2.1", ExpiresAt: time.Now().Add(-time.Minute)}))
	must(t, s.CreateLoginSession(ctx, &storage.LoginSession{Key: "k", Kind: "public", Subject: "alice",
		AuthTime: time.Now(), LastSeen: time.Now(), ExpiresAt: time.Now().Add(-time.Minute)}))
	n, err := s.DeleteExpired(ctx, time.Now(), 10)
	if err != nil || n != 28 {
		t.Fatalf("DeleteExpired = %d, %v; want 28", n, err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "live", nil); err != nil {
		t.Fatalf("live token removed: %v", err)
	}
	if _, err := s.DeleteExpired(ctx, time.Now(), 0); err == nil {
		t.Fatal("batch 0 accepted")
	}
}

func TestTouchAPIKeys(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	for _, id := range []string{"k1", "k2"} {
		must(t, s.CreateAPIKey(ctx, &storage.APIKey{ID: id, Hash: "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", Status: storage.APIKeyActive}))
	}
	t1 := time.Now().UTC().Truncate(time.Microsecond)
	must(t, s.TouchAPIKeys(ctx, map[string]time.Time{"k1": t1, "k2": t1, "ghost": t1}))
	must(t, s.TouchAPIKeys(ctx, map[string]time.Time{"k1": t1.Add(-time.Hour)})) // late batch
	for _, id := range []string{"k1", "k2"} {
		k, err := s.APIKeyByID(ctx, id)
		must(t, err)
		if !k.LastUsedAt.Equal(t1) || k.Version != 1 {
			t.Fatalf("%s last used = %v version %d; want %v, 1", id, k.LastUsedAt, k.Version, t1)
		}
	}
}

// No column of any table may contain a raw token signature, code, request
// URI, session cookie or JTI after they were stored.
func TestNoRawSecretsAtRest(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	secrets := map[string]string{
		"code": "SECRETcode0001", "access": "SECRETaccess0002", "refresh": "SECRETrefresh0003",
		"pkce": "SECRETpkce0004", "oidc": "SECREToidc0005", "par": "urn:ietf:params:oauth:request_uri:SECRETpar0006",
		"cookie": "SECRETcookie0007", "jti": "SECRETjti0008",
	}
	r := newRequest("req", "alice")
	// Secret form fields fosite might carry are dropped by the codec.
	r.Form.Set("client_secret", "SECRETclientsecret0009")
	r.Form.Set("code_verifier", "SECRETverifier0010")
	must(t, s.CreateAuthorizeCodeSession(ctx, secrets["code"], r))
	must(t, s.CreateAccessTokenSession(ctx, secrets["access"], r))
	must(t, s.CreateRefreshTokenSession(ctx, secrets["refresh"], secrets["access"], r))
	must(t, s.CreatePKCERequestSession(ctx, secrets["pkce"], r))
	must(t, s.CreateOpenIDConnectSession(ctx, secrets["oidc"], r))
	ar := fosite.NewAuthorizeRequest()
	ar.ID, ar.Client, ar.Session, ar.RequestedAt = "par", &storage.Client{ID: "c1"}, storage.NewSession(""), time.Now()
	must(t, s.CreatePARSession(ctx, secrets["par"], ar))
	must(t, s.CreateLoginSession(ctx, &storage.LoginSession{Key: secrets["cookie"], Kind: "public", Subject: "alice",
		AuthTime: time.Now(), LastSeen: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}))
	must(t, s.SetClientAssertionJWT(ctx, secrets["jti"], time.Now().Add(time.Hour)))
	// The stored rows are still usable.
	if _, err := s.GetLoginSession(ctx, secrets["cookie"]); err != nil {
		t.Fatalf("login session: %v", err)
	}

	rows, err := s.Pool().Query(ctx, `SELECT table_name::text, column_name::text, data_type::text
		FROM information_schema.columns
		WHERE table_schema = current_schema() AND data_type IN ('text', 'bytea', 'jsonb', 'ARRAY', 'character varying')`)
	must(t, err)
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Table, Column, Type string }])
	must(t, err)
	if len(cols) < 20 {
		t.Fatalf("only %d columns scanned", len(cols))
	}
	for _, c := range cols {
		col := pgx.Identifier{c.Column}.Sanitize()
		cond := `position('SECRET' in ` + col + `::text) > 0`
		if c.Type == "bytea" {
			cond = `position(convert_to('SECRET', 'UTF8') in ` + col + `) > 0`
		}
		q := `SELECT count(*) FROM ` + pgx.Identifier{c.Table}.Sanitize() + ` WHERE ` + cond
		var n int
		must(t, s.Pool().QueryRow(ctx, q).Scan(&n))
		if n != 0 {
			t.Errorf("%s.%s holds a raw secret in %d rows", c.Table, c.Column, n)
		}
	}
}

// TestPoolSize: an explicit Config wins, then the DSN's pool_max_conns,
// then DefaultMaxConns (not pgxpool's max(4, CPUs), which starves a small
// replica: see docs/performance.md).
func TestPoolSize(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	for _, tc := range []struct {
		name string
		dsn  string
		cfg  int32
		want int32
	}{
		{"case=default", dsn, 0, postgres.DefaultMaxConns()},
		{"case=DSN pool_max_conns", dsn + sep + "pool_max_conns=3", 0, 3},
		{"case=Config wins over the DSN", dsn + sep + "pool_max_conns=3", 5, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := postgres.Open(context.Background(), postgres.Config{DSN: tc.dsn, MaxConns: tc.cfg})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.Pool().Config().MaxConns; got != tc.want {
				t.Fatalf("MaxConns = %d, want %d", got, tc.want)
			}
		})
	}
	if d := postgres.DefaultMaxConns(); d < 16 {
		t.Fatalf("DefaultMaxConns = %d, want at least 16", d)
	}
}
