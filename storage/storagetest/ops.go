package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// waitFor bounds how long a notification may take; it is only reached when
// the store is broken.
const waitFor = 5 * time.Second

func receive(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got, ok := <-ch:
		if !ok {
			t.Fatalf("subscription closed, want payload %q", want)
		}
		if got != want {
			t.Fatalf("payload: want %q, got %q", want, got)
		}
	case <-time.After(waitFor):
		t.Fatalf("no payload %q within %s", want, waitFor)
	}
}

var opsTests = []test{
	{"ping", func(t *testing.T, s storage.Store) {
		must(t, s.Ping(ctx(t)))
	}},
	{"locker/exclusive", func(t *testing.T, s storage.Store) {
		release, ok, err := s.TryLock(ctx(t), "rotate-keys")
		must(t, err)
		if !ok {
			t.Fatal("first TryLock failed")
		}
		_, ok, err = s.TryLock(ctx(t), "rotate-keys")
		must(t, err)
		if ok {
			t.Fatal("second TryLock on a held lock succeeded")
		}
		other, ok, err := s.TryLock(ctx(t), "janitor")
		must(t, err)
		if !ok {
			t.Fatal("TryLock on another name failed")
		}
		other()
		release()
		release() // releasing twice is harmless
		again, ok, err := s.TryLock(ctx(t), "rotate-keys")
		must(t, err)
		if !ok {
			t.Fatal("TryLock after release failed")
		}
		again()
	}},
	{"notifier/fan-out", func(t *testing.T, s storage.Store) {
		sctx, cancel := context.WithCancel(ctx(t))
		defer cancel()
		a1, err := s.Subscribe(sctx, "bulwark_test_a")
		must(t, err)
		a2, err := s.Subscribe(sctx, "bulwark_test_a")
		must(t, err)
		b, err := s.Subscribe(sctx, "bulwark_test_b")
		must(t, err)
		// Published on b first: a subscriber of a must not see it.
		must(t, s.Notify(ctx(t), "bulwark_test_b", "for-b"))
		must(t, s.Notify(ctx(t), "bulwark_test_a", "keyring:v2"))
		receive(t, a1, "keyring:v2")
		receive(t, a2, "keyring:v2")
		receive(t, b, "for-b")

		cancel()
		for _, ch := range []<-chan string{a1, a2, b} {
			deadline := time.After(waitFor)
		drain:
			for {
				select {
				case _, ok := <-ch:
					if !ok {
						break drain
					}
				case <-deadline:
					t.Fatal("subscription not closed after its context ended")
				}
			}
		}
	}},
	{"janitor/delete-expired", func(t *testing.T, s storage.Store) {
		t0 := now()
		past, future := t0.Add(-48*time.Hour), t0.Add(48*time.Hour)
		c := createClient(t, s, "app")
		for _, p := range []struct {
			prefix string
			exp    time.Time
		}{{"old", past}, {"new", future}} {
			r := newRequestExp("req-"+p.prefix, c, "alice", p.exp)
			r.RequestedAt = p.exp.Add(-time.Hour)
			must(t, s.CreateAuthorizeCodeSession(ctx(t), p.prefix+"-code", r))
			must(t, s.CreateAccessTokenSession(ctx(t), p.prefix+"-at", r))
			must(t, s.CreateRefreshTokenSession(ctx(t), p.prefix+"-rt", p.prefix+"-at", r))
			must(t, s.CreatePKCERequestSession(ctx(t), p.prefix+"-code", r))
			must(t, s.CreateOpenIDConnectSession(ctx(t), p.prefix+"-code", r))
			must(t, s.CreatePARSession(ctx(t), p.prefix+"-par", &fosite.AuthorizeRequest{
				ResponseTypes: fosite.Arguments{"code"}, State: "state-12345678", Request: *r,
			}))
			must(t, s.SetClientAssertionJWT(ctx(t), p.prefix+"-jti", p.exp))
			must(t, s.CreateLoginSession(ctx(t), &storage.LoginSession{
				Key: p.prefix + "-login", Kind: "public", Subject: "alice",
				AuthTime: p.exp.Add(-time.Hour), LastSeen: p.exp.Add(-time.Hour), ExpiresAt: p.exp,
			}))
			must(t, s.PutBlock(ctx(t), &storage.Block{
				Kind: "ip", Value: p.prefix, Reason: "test", CreatedAt: p.exp.Add(-time.Hour), ExpiresAt: p.exp,
			}))
		}
		// 6 token tables + JTI + login session + block, batch smaller than
		// that: one call still removes everything expired.
		n, err := s.DeleteExpired(ctx(t), t0, 2)
		must(t, err)
		if n != 9 {
			t.Fatalf("DeleteExpired removed %d rows, want 9", n)
		}
		n, err = s.DeleteExpired(ctx(t), t0, 2)
		must(t, err)
		if n != 0 {
			t.Fatalf("second DeleteExpired removed %d rows, want 0", n)
		}

		getters := []struct {
			name string
			get  func(key string) error
		}{
			{"code", func(k string) error { _, err := s.GetAuthorizeCodeSession(ctx(t), k+"-code", nil); return err }},
			{"access", func(k string) error { _, err := s.GetAccessTokenSession(ctx(t), k+"-at", nil); return err }},
			{"refresh", func(k string) error { _, err := s.GetRefreshTokenSession(ctx(t), k+"-rt", nil); return err }},
			{"pkce", func(k string) error { _, err := s.GetPKCERequestSession(ctx(t), k+"-code", nil); return err }},
			{"oidc", func(k string) error { _, err := s.GetOpenIDConnectSession(ctx(t), k+"-code", nil); return err }},
			{"par", func(k string) error { _, err := s.GetPARSession(ctx(t), k+"-par"); return err }},
		}
		for _, g := range getters {
			wantErr(t, g.get("old"), fosite.ErrNotFound)
			if err := g.get("new"); err != nil {
				t.Fatalf("unexpired %s removed: %v", g.name, err)
			}
		}
		// The expired JTI is gone, so it may be recorded again.
		must(t, s.SetClientAssertionJWT(ctx(t), "old-jti", future))
		wantErr(t, s.ClientAssertionJWTValid(ctx(t), "new-jti"), fosite.ErrJTIKnown)
		_, err = s.GetLoginSession(ctx(t), "new-login")
		must(t, err)
		blocks, err := s.ListBlocks(ctx(t), past.Add(-time.Hour))
		must(t, err)
		if len(blocks) != 1 || blocks[0].Value != "new" {
			t.Fatalf("blocks after janitor: %+v", blocks)
		}
	}},
	{"janitor/fallback-lifetimes", func(t *testing.T, s storage.Store) {
		// A session without expiries keeps its row storage.FallbackLifetime
		// of the row's token type after RequestedAt: one row per table just
		// past that lifetime and one just within it tell whether a backend
		// uses the shared lifetimes.
		t0 := now()
		c := createClient(t, s, "app")
		par := func(r *fosite.Request) *fosite.AuthorizeRequest {
			return &fosite.AuthorizeRequest{ResponseTypes: fosite.Arguments{"code"}, State: "state-12345678", Request: *r}
		}
		tables := []struct {
			name   string
			tt     fosite.TokenType // the expiry that bounds the row
			life   time.Duration
			create func(key string, r *fosite.Request) error
			get    func(key string) error
		}{
			{"code", fosite.AuthorizeCode, storage.FallbackCodeLifetime,
				func(k string, r *fosite.Request) error { return s.CreateAuthorizeCodeSession(ctx(t), k, r) },
				func(k string) error { _, err := s.GetAuthorizeCodeSession(ctx(t), k, nil); return err }},
			{"access", fosite.AccessToken, storage.FallbackAccessLifetime,
				func(k string, r *fosite.Request) error { return s.CreateAccessTokenSession(ctx(t), k, r) },
				func(k string) error { _, err := s.GetAccessTokenSession(ctx(t), k, nil); return err }},
			{"refresh", fosite.RefreshToken, storage.FallbackRefreshLifetime,
				func(k string, r *fosite.Request) error { return s.CreateRefreshTokenSession(ctx(t), k, "at-"+k, r) },
				func(k string) error { _, err := s.GetRefreshTokenSession(ctx(t), k, nil); return err }},
			{"pkce", fosite.AuthorizeCode, storage.FallbackCodeLifetime,
				func(k string, r *fosite.Request) error { return s.CreatePKCERequestSession(ctx(t), k, r) },
				func(k string) error { _, err := s.GetPKCERequestSession(ctx(t), k, nil); return err }},
			{"oidc", fosite.AuthorizeCode, storage.FallbackCodeLifetime,
				func(k string, r *fosite.Request) error { return s.CreateOpenIDConnectSession(ctx(t), k, r) },
				func(k string) error { _, err := s.GetOpenIDConnectSession(ctx(t), k, nil); return err }},
			{"par", fosite.PushedAuthorizeRequestContext, storage.FallbackPARLifetime,
				func(k string, r *fosite.Request) error { return s.CreatePARSession(ctx(t), k, par(r)) },
				func(k string) error { _, err := s.GetPARSession(ctx(t), k); return err }},
		}
		for _, tb := range tables {
			if got := storage.FallbackLifetime(tb.tt); got != tb.life {
				t.Fatalf("storage.FallbackLifetime(%s) = %s, want %s for %s rows", tb.tt, got, tb.life, tb.name)
			}
			for _, p := range []struct {
				prefix string
				age    time.Duration
			}{{"gone", tb.life + time.Second}, {"kept", tb.life - time.Second}} {
				r := newRequest("req-"+p.prefix, c, "alice")
				r.Session = storage.NewSession("alice") // no expiry of its own
				r.RequestedAt = t0.Add(-p.age)
				must(t, tb.create(p.prefix+"-"+tb.name, r))
			}
		}
		n, err := s.DeleteExpired(ctx(t), t0, 100)
		must(t, err)
		for _, tb := range tables {
			if err := tb.get("gone-" + tb.name); !errors.Is(err, fosite.ErrNotFound) {
				t.Errorf("%s row older than %s without session expiry: want it reclaimed, got %v", tb.name, tb.life, err)
			}
			if err := tb.get("kept-" + tb.name); err != nil {
				t.Errorf("%s row younger than %s without session expiry: want it kept, got %v", tb.name, tb.life, err)
			}
		}
		if n != int64(len(tables)) {
			t.Fatalf("DeleteExpired removed %d rows, want %d", n, len(tables))
		}
	}},
	{"janitor/trim-audit", func(t *testing.T, s storage.Store) {
		t0 := now()
		for i, at := range []time.Time{t0.Add(-72 * time.Hour), t0.Add(-71 * time.Hour), t0.Add(-70 * time.Hour), t0.Add(-time.Hour), t0} {
			must(t, s.AppendAudit(ctx(t), &storage.AuditEvent{Time: at, Event: "login", Actor: "alice", RequestID: string(rune('a' + i))}))
		}
		n, err := s.TrimAudit(ctx(t), t0.Add(-24*time.Hour), 2)
		must(t, err)
		if n != 3 {
			t.Fatalf("TrimAudit removed %d, want 3", n)
		}
		left, err := s.ListAudit(ctx(t), storage.AuditFilter{})
		must(t, err)
		if len(left) != 2 || left[0].RequestID != "e" || left[1].RequestID != "d" {
			t.Fatalf("audit after trim: %+v", left)
		}
	}},
}
