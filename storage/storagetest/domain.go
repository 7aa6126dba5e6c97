package storagetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

func newUser(id, username string) *storage.User {
	t0 := now()
	return &storage.User{
		ID: id, Username: username, Email: username + "@example.com",
		PasswordHash:     "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", // #nosec G101 -- a fixed test fixture hash, not a credential
		AdminScopes:      []string{"admin:clients"},
		TOTPSecretSealed: []byte{1, 2, 3},
		CreatedAt:        t0, UpdatedAt: t0,
	}
}

func newAPIKey(id, name string) *storage.APIKey {
	t0 := now()
	return &storage.APIKey{
		ID: id, Name: name, OwnerType: "client", OwnerID: "app",
		Scopes: []string{"introspect"}, Hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		Status: storage.APIKeyActive, CreatedBy: "admin-1", CreatedAt: t0,
		ExpiresAt: t0.Add(90 * 24 * time.Hour), RotationPeriod: 30 * 24 * time.Hour,
		GracePeriod: 24 * time.Hour, RotateAt: t0.Add(30 * 24 * time.Hour),
		ReplacesID: "old-key", SealedSuccessorSecret: []byte{9, 9},
	}
}

func newSigningKey(kid string, state storage.KeyState, created time.Time) *storage.SigningKey {
	return &storage.SigningKey{
		KID: kid, Algorithm: "ES256", State: state,
		PublicJWK: []byte(`{"kty":"EC","kid":"` + kid + `"}`), SealedPrivate: []byte{7, 7, 7},
		CreatedAt: created, ActivateAt: created.Add(time.Hour), DeleteAfter: created.Add(48 * time.Hour),
	}
}

var domainTests = []test{
	{"user/create-get", func(t *testing.T, s storage.Store) {
		u := newUser("u-1", "Alice")
		must(t, s.CreateUser(ctx(t), u))
		if u.Version != 1 {
			t.Fatalf("CreateUser set Version %d, want 1", u.Version)
		}
		got, err := s.UserByID(ctx(t), "u-1")
		must(t, err)
		wantEqual(t, "user", u, got)
		for _, name := range []string{"Alice", "alice", "ALICE"} {
			got, err = s.UserByUsername(ctx(t), name)
			must(t, err)
			wantEqual(t, "user by "+name, u, got)
		}
		_, err = s.UserByID(ctx(t), "u-2")
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.UserByUsername(ctx(t), "bob")
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"user/duplicate", func(t *testing.T, s storage.Store) {
		must(t, s.CreateUser(ctx(t), newUser("u-1", "Alice")))
		wantErr(t, s.CreateUser(ctx(t), newUser("u-1", "bob")), storage.ErrConflict)
		wantErr(t, s.CreateUser(ctx(t), newUser("u-2", "aLiCe")), storage.ErrConflict)
	}},
	{"user/update-delete", func(t *testing.T, s storage.Store) {
		u := newUser("u-1", "alice")
		must(t, s.CreateUser(ctx(t), u))
		must(t, s.CreateUser(ctx(t), newUser("u-2", "bob")))
		u.Email = "new@example.com"
		u.Disabled = true
		must(t, s.UpdateUser(ctx(t), u, 1))
		if u.Version != 2 {
			t.Fatalf("UpdateUser set Version %d, want 2", u.Version)
		}
		got, err := s.UserByID(ctx(t), "u-1")
		must(t, err)
		wantEqual(t, "updated user", u, got)
		wantErr(t, s.UpdateUser(ctx(t), u, 1), storage.ErrPreconditionFailed)
		u.Username = "BOB"
		wantErr(t, s.UpdateUser(ctx(t), u, 2), storage.ErrConflict)
		wantErr(t, s.UpdateUser(ctx(t), newUser("u-9", "zed"), 1), storage.ErrNotFound)

		must(t, s.DeleteUser(ctx(t), "u-1"))
		_, err = s.UserByID(ctx(t), "u-1")
		wantErr(t, err, storage.ErrNotFound)
		wantErr(t, s.DeleteUser(ctx(t), "u-1"), storage.ErrNotFound)
	}},
	{"user/delete-removes-consents-and-login-sessions", func(t *testing.T, s storage.Store) {
		t0 := now()
		for _, id := range []string{"u-1", "u-2"} {
			must(t, s.CreateUser(ctx(t), newUser(id, "user-"+id)))
			must(t, s.SaveConsent(ctx(t), &storage.Consent{Subject: id, ClientID: "app", Scopes: []string{"openid"}, GrantedAt: t0}))
			must(t, s.CreateLoginSession(ctx(t), &storage.LoginSession{
				Key: "cookie-" + id, Kind: "public", Subject: id, AuthTime: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour),
			}))
		}
		must(t, s.DeleteUser(ctx(t), "u-1"))
		// A user re-created under the same id must not inherit consents,
		// and a deleted user's browser must be signed out.
		_, err := s.GetConsent(ctx(t), "u-1", "app")
		wantErr(t, err, storage.ErrNotFound)
		list, err := s.ListConsents(ctx(t), "u-1")
		must(t, err)
		if len(list) != 0 {
			t.Fatalf("deleted user still has %d consents", len(list))
		}
		_, err = s.GetLoginSession(ctx(t), "cookie-u-1")
		wantErr(t, err, storage.ErrNotFound)

		_, err = s.GetConsent(ctx(t), "u-2", "app")
		must(t, err)
		_, err = s.GetLoginSession(ctx(t), "cookie-u-2")
		must(t, err)
	}},
	{"user/list", func(t *testing.T, s storage.Store) {
		for i, name := range []string{"alice", "bob", "Alicia", "carol"} {
			must(t, s.CreateUser(ctx(t), newUser(fmt.Sprintf("u-%d", i+1), name)))
		}
		cases := []struct {
			name string
			opts storage.ListOptions
			want []string
		}{
			{"case=all", storage.ListOptions{}, []string{"u-1", "u-2", "u-3", "u-4"}},
			{"case=page", storage.ListOptions{After: "u-1", Limit: 2}, []string{"u-2", "u-3"}},
			{"case=name", storage.ListOptions{NameContains: "ALI"}, []string{"u-1", "u-3"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListUsers(ctx(t), tc.opts)
				must(t, err)
				var ids []string
				for _, u := range got {
					ids = append(ids, u.ID)
				}
				wantEqual(t, "ids", tc.want, ids)
			})
		}
	}},
	{"consent/save-get-list-revoke", func(t *testing.T, s storage.Store) {
		t0 := now()
		c := &storage.Consent{Subject: "alice", ClientID: "b-app", Scopes: []string{"openid"}, GrantedAt: t0}
		must(t, s.SaveConsent(ctx(t), c))
		got, err := s.GetConsent(ctx(t), "alice", "b-app")
		must(t, err)
		wantEqual(t, "consent", c, got)

		c.Scopes = []string{"openid", "email"}
		c.ExpiresAt = t0.Add(24 * time.Hour)
		must(t, s.SaveConsent(ctx(t), c)) // upsert
		got, err = s.GetConsent(ctx(t), "alice", "b-app")
		must(t, err)
		wantEqual(t, "replaced consent", c, got)

		a := &storage.Consent{Subject: "alice", ClientID: "a-app", Scopes: []string{"read"}, GrantedAt: t0}
		must(t, s.SaveConsent(ctx(t), a))
		must(t, s.SaveConsent(ctx(t), &storage.Consent{Subject: "bob", ClientID: "a-app", Scopes: []string{"read"}, GrantedAt: t0}))
		must(t, s.SaveConsent(ctx(t), &storage.Consent{Subject: "alice", ClientID: "old-app", Scopes: []string{"read"},
			GrantedAt: t0.Add(-48 * time.Hour), ExpiresAt: t0.Add(-24 * time.Hour)}))
		_, err = s.GetConsent(ctx(t), "alice", "old-app")
		wantErr(t, err, storage.ErrNotFound)
		list, err := s.ListConsents(ctx(t), "alice")
		must(t, err)
		wantEqual(t, "alice's consents", []*storage.Consent{a, c}, list)

		must(t, s.RevokeConsent(ctx(t), "alice", "b-app"))
		_, err = s.GetConsent(ctx(t), "alice", "b-app")
		wantErr(t, err, storage.ErrNotFound)
		wantErr(t, s.RevokeConsent(ctx(t), "alice", "b-app"), storage.ErrNotFound)
		_, err = s.GetConsent(ctx(t), "bob", "a-app")
		must(t, err)
	}},
	{"login-session/lifecycle", func(t *testing.T, s storage.Store) {
		t0 := now()
		l := &storage.LoginSession{
			Key: "cookie-value-1", Kind: "public", Subject: "alice", AuthTime: t0, LastSeen: t0,
			ExpiresAt: t0.Add(time.Hour), Data: map[string]string{"csrf": "x"},
		}
		must(t, s.CreateLoginSession(ctx(t), l))
		got, err := s.GetLoginSession(ctx(t), "cookie-value-1")
		must(t, err)
		wantEqual(t, "login session", l, got)

		must(t, s.TouchLoginSession(ctx(t), "cookie-value-1", t0.Add(time.Minute)))
		got, err = s.GetLoginSession(ctx(t), "cookie-value-1")
		must(t, err)
		if !got.LastSeen.Equal(t0.Add(time.Minute)) {
			t.Fatalf("LastSeen: want %s, got %s", t0.Add(time.Minute), got.LastSeen)
		}
		wantErr(t, s.TouchLoginSession(ctx(t), "unknown", t0), storage.ErrNotFound)

		must(t, s.DeleteLoginSession(ctx(t), "cookie-value-1"))
		_, err = s.GetLoginSession(ctx(t), "cookie-value-1")
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"login-session/expired", func(t *testing.T, s storage.Store) {
		t0 := now()
		must(t, s.CreateLoginSession(ctx(t), &storage.LoginSession{
			Key: "old", Kind: "console", Subject: "alice", AuthTime: t0.Add(-3 * time.Hour),
			LastSeen: t0.Add(-3 * time.Hour), ExpiresAt: t0.Add(-2 * time.Hour),
		}))
		_, err := s.GetLoginSession(ctx(t), "old")
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"login-session/delete-by-subject", func(t *testing.T, s storage.Store) {
		t0 := now()
		for i, sub := range []string{"alice", "alice", "bob"} {
			must(t, s.CreateLoginSession(ctx(t), &storage.LoginSession{
				Key: fmt.Sprintf("k-%d", i), Kind: "public", Subject: sub, AuthTime: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour),
			}))
		}
		n, err := s.DeleteLoginSessionsBySubject(ctx(t), "alice")
		must(t, err)
		if n != 2 {
			t.Fatalf("deleted %d sessions, want 2", n)
		}
		for _, k := range []string{"k-0", "k-1"} {
			_, err = s.GetLoginSession(ctx(t), k)
			wantErr(t, err, storage.ErrNotFound)
		}
		_, err = s.GetLoginSession(ctx(t), "k-2")
		must(t, err)
	}},
	{"signing-key/lifecycle", func(t *testing.T, s storage.Store) {
		t0 := now()
		k1 := newSigningKey("k1", storage.KeyActive, t0.Add(-time.Hour))
		k2 := newSigningKey("k2", storage.KeyNext, t0)
		must(t, s.CreateSigningKey(ctx(t), k1))
		must(t, s.CreateSigningKey(ctx(t), k2))
		wantErr(t, s.CreateSigningKey(ctx(t), newSigningKey("k1", storage.KeyNext, t0)), storage.ErrConflict)
		got := signingKeys(t, s)
		wantEqual(t, "k1", k1, got["k1"])
		wantEqual(t, "k2", k2, got["k2"])

		wantErr(t, s.TransitionSigningKey(ctx(t), "k2", storage.KeyActive, storage.KeyRetired, t0), storage.ErrPreconditionFailed)
		must(t, s.TransitionSigningKey(ctx(t), "k2", storage.KeyNext, storage.KeyActive, t0.Add(time.Minute)))
		must(t, s.TransitionSigningKey(ctx(t), "k1", storage.KeyActive, storage.KeyRetired, t0.Add(2*time.Minute)))
		wantErr(t, s.TransitionSigningKey(ctx(t), "nope", storage.KeyNext, storage.KeyActive, t0), storage.ErrNotFound)
		got = signingKeys(t, s)
		if got["k2"].State != storage.KeyActive || !got["k2"].ActivatedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("k2 after activation: %s activated %s", got["k2"].State, got["k2"].ActivatedAt)
		}
		if got["k1"].State != storage.KeyRetired || !got["k1"].RetiredAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("k1 after retirement: %s retired %s", got["k1"].State, got["k1"].RetiredAt)
		}
		must(t, s.TransitionSigningKey(ctx(t), "k1", storage.KeyRetired, storage.KeyRevoked, t0.Add(3*time.Minute)))
		if got = signingKeys(t, s); !got["k1"].RevokedAt.Equal(t0.Add(3 * time.Minute)) {
			t.Fatalf("k1 RevokedAt: %s", got["k1"].RevokedAt)
		}

		must(t, s.ResealSigningKey(ctx(t), "k2", []byte{8, 8}))
		wantEqual(t, "resealed", []byte{8, 8}, signingKeys(t, s)["k2"].SealedPrivate)
		wantErr(t, s.ResealSigningKey(ctx(t), "nope", []byte{1}), storage.ErrNotFound)

		must(t, s.DeleteSigningKey(ctx(t), "k1"))
		if _, ok := signingKeys(t, s)["k1"]; ok {
			t.Fatal("deleted key still listed")
		}
		wantErr(t, s.DeleteSigningKey(ctx(t), "k1"), storage.ErrNotFound)
	}},
	{"signing-key/concurrent-transition", func(t *testing.T, s storage.Store) {
		must(t, s.CreateSigningKey(ctx(t), newSigningKey("k", storage.KeyNext, now())))
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.TransitionSigningKey(ctx(t), "k", storage.KeyNext, storage.KeyActive, now())
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			default:
				wantErr(t, err, storage.ErrPreconditionFailed)
			}
		}
		if wins != 1 {
			t.Fatalf("%d goroutines won the transition, want exactly 1", wins)
		}
	}},
	{"api-key/create-get-update", func(t *testing.T, s storage.Store) {
		k := newAPIKey("key-1", "CI deploy")
		must(t, s.CreateAPIKey(ctx(t), k))
		if k.Version != 1 {
			t.Fatalf("CreateAPIKey set Version %d, want 1", k.Version)
		}
		got, err := s.APIKeyByID(ctx(t), "key-1")
		must(t, err)
		wantEqual(t, "api key", k, got)
		wantErr(t, s.CreateAPIKey(ctx(t), newAPIKey("key-1", "again")), storage.ErrConflict)
		_, err = s.APIKeyByID(ctx(t), "nope")
		wantErr(t, err, storage.ErrNotFound)

		k.Status = storage.APIKeyRevoked
		k.RevokedAt = now()
		k.SealedSuccessorSecret = nil
		must(t, s.UpdateAPIKey(ctx(t), k, 1))
		if k.Version != 2 {
			t.Fatalf("UpdateAPIKey set Version %d, want 2", k.Version)
		}
		got, err = s.APIKeyByID(ctx(t), "key-1")
		must(t, err)
		wantEqual(t, "updated api key", k, got)
		wantErr(t, s.UpdateAPIKey(ctx(t), k, 1), storage.ErrPreconditionFailed)
		wantErr(t, s.UpdateAPIKey(ctx(t), newAPIKey("nope", "x"), 1), storage.ErrNotFound)
	}},
	{"api-key/list", func(t *testing.T, s storage.Store) {
		for i, name := range []string{"Deploy", "backup", "deploy-staging"} {
			must(t, s.CreateAPIKey(ctx(t), newAPIKey(fmt.Sprintf("key-%d", i+1), name)))
		}
		cases := []struct {
			name string
			opts storage.ListOptions
			want []string
		}{
			{"case=all", storage.ListOptions{}, []string{"key-1", "key-2", "key-3"}},
			{"case=page", storage.ListOptions{After: "key-1", Limit: 1}, []string{"key-2"}},
			{"case=name", storage.ListOptions{NameContains: "DEPLOY"}, []string{"key-1", "key-3"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListAPIKeys(ctx(t), tc.opts)
				must(t, err)
				var ids []string
				for _, k := range got {
					ids = append(ids, k.ID)
				}
				wantEqual(t, "ids", tc.want, ids)
			})
		}
	}},
	{"api-key/touch", func(t *testing.T, s storage.Store) {
		t0 := now()
		must(t, s.CreateAPIKey(ctx(t), newAPIKey("key-1", "a")))
		must(t, s.CreateAPIKey(ctx(t), newAPIKey("key-2", "b")))
		must(t, s.CreateAPIKey(ctx(t), newAPIKey("key-3", "c")))
		must(t, s.TouchAPIKeys(ctx(t), map[string]time.Time{"key-1": t0, "key-2": t0.Add(time.Second), "unknown": t0}))
		// An older timestamp (another replica flushing late) does not move
		// LastUsedAt backwards.
		must(t, s.TouchAPIKeys(ctx(t), map[string]time.Time{"key-1": t0.Add(-time.Hour)}))
		for id, want := range map[string]time.Time{"key-1": t0, "key-2": t0.Add(time.Second), "key-3": {}} {
			got, err := s.APIKeyByID(ctx(t), id)
			must(t, err)
			if !got.LastUsedAt.Equal(want) {
				t.Fatalf("%s LastUsedAt: want %s, got %s", id, want, got.LastUsedAt)
			}
			if got.Version != 1 {
				t.Fatalf("%s: touch changed Version to %d", id, got.Version)
			}
		}
	}},
	{"audit/append-list", func(t *testing.T, s storage.Store) {
		t0 := now().Add(-10 * time.Hour)
		var events []*storage.AuditEvent
		for i := range 5 {
			e := &storage.AuditEvent{
				Time: t0.Add(time.Duration(i) * time.Hour), Event: []string{"login", "token"}[i%2],
				Actor: []string{"alice", "bob", "carol"}[i%3], ClientID: []string{"app", "other"}[i/3],
				SourceIP: "192.0.2.1", UserAgent: "test", Subject: "alice", Outcome: "success",
				RequestID: fmt.Sprintf("r-%d", i), Details: map[string]string{"n": fmt.Sprint(i)},
			}
			must(t, s.AppendAudit(ctx(t), e))
			if e.ID == 0 || (i > 0 && e.ID <= events[i-1].ID) {
				t.Fatalf("event %d got id %d, want increasing ids", i, e.ID)
			}
			events = append(events, e)
		}
		pick := func(idx ...int) []*storage.AuditEvent {
			var out []*storage.AuditEvent
			for _, i := range idx {
				out = append(out, events[i])
			}
			return out
		}
		cases := []struct {
			name string
			f    storage.AuditFilter
			want []*storage.AuditEvent
		}{
			{"case=all-newest-first", storage.AuditFilter{}, pick(4, 3, 2, 1, 0)},
			{"case=limit", storage.AuditFilter{Limit: 2}, pick(4, 3)},
			{"case=before-id", storage.AuditFilter{BeforeID: events[3].ID, Limit: 2}, pick(2, 1)},
			{"case=since", storage.AuditFilter{Since: t0.Add(90 * time.Minute)}, pick(4, 3, 2)},
			{"case=until", storage.AuditFilter{Until: t0.Add(90 * time.Minute)}, pick(1, 0)},
			{"case=window", storage.AuditFilter{Since: t0.Add(30 * time.Minute), Until: t0.Add(150 * time.Minute)}, pick(2, 1)},
			{"case=actor", storage.AuditFilter{Actor: "alice"}, pick(3, 0)},
			{"case=event", storage.AuditFilter{Event: "token"}, pick(3, 1)},
			{"case=client", storage.AuditFilter{ClientID: "other"}, pick(4, 3)},
			{"case=combined", storage.AuditFilter{Event: "login", ClientID: "app"}, pick(2, 0)},
			{"case=no-match", storage.AuditFilter{Actor: "mallory"}, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListAudit(ctx(t), tc.f)
				must(t, err)
				wantEqual(t, "events", tc.want, got)
			})
		}
	}},
	{"block/put-list-delete", func(t *testing.T, s storage.Store) {
		t0 := now()
		live := &storage.Block{Kind: "ip", Value: "192.0.2.7", Reason: "brute force", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		client := &storage.Block{Kind: "client", Value: "app", Reason: "admin", CreatedAt: t0, ExpiresAt: t0.Add(2 * time.Hour)}
		old := &storage.Block{Kind: "ip", Value: "192.0.2.8", Reason: "old", CreatedAt: t0.Add(-3 * time.Hour), ExpiresAt: t0.Add(-2 * time.Hour)}
		for _, b := range []*storage.Block{live, client, old} {
			must(t, s.PutBlock(ctx(t), b))
		}
		got, err := s.ListBlocks(ctx(t), t0)
		must(t, err)
		wantEqual(t, "live blocks", []*storage.Block{client, live}, got)
		// Blocks are listed by the time the caller passes, not the store's clock.
		got, err = s.ListBlocks(ctx(t), t0.Add(90*time.Minute))
		must(t, err)
		wantEqual(t, "blocks later", []*storage.Block{client}, got)

		live.Reason = "extended"
		live.ExpiresAt = t0.Add(3 * time.Hour)
		must(t, s.PutBlock(ctx(t), live)) // upsert
		must(t, s.DeleteBlock(ctx(t), "client", "app"))
		wantErr(t, s.DeleteBlock(ctx(t), "client", "app"), storage.ErrNotFound)
		got, err = s.ListBlocks(ctx(t), t0)
		must(t, err)
		wantEqual(t, "blocks after upsert and delete", []*storage.Block{live}, got)
	}},
}

func signingKeys(t *testing.T, s storage.Store) map[string]*storage.SigningKey {
	t.Helper()
	list, err := s.ListSigningKeys(ctx(t))
	must(t, err)
	out := map[string]*storage.SigningKey{}
	for _, k := range list {
		out[k.KID] = k
	}
	return out
}
