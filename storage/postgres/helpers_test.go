package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// storeWithClient returns a migrated store holding client "c1".
func storeWithClient(t testing.TB) *postgres.Store {
	t.Helper()
	s := pgtest.NewStore(t)
	if err := s.CreateClient(ctxT(t), &storage.Client{ID: "c1", Name: "Client One", GrantTypes: []string{"client_credentials"}}); err != nil {
		t.Fatalf("create client: %v", err)
	}
	return s
}

// newRequest builds a requester for client c1 with request id id.
func newRequest(id, subject string) *fosite.Request {
	sess := storage.NewSession(subject)
	now := time.Now().UTC().Truncate(time.Microsecond)
	sess.SetExpiresAt(fosite.AccessToken, now.Add(time.Hour))
	sess.SetExpiresAt(fosite.RefreshToken, now.Add(24*time.Hour))
	sess.SetExpiresAt(fosite.AuthorizeCode, now.Add(10*time.Minute))
	r := fosite.NewRequest()
	r.ID = id
	r.RequestedAt = now
	r.Client = &storage.Client{ID: "c1"}
	r.Session = sess
	r.GrantScope("openid")
	r.Form.Set("scope", "openid")
	return r
}

// waitUntil polls cond until it holds or the (generous) deadline passes.
func waitUntil(t testing.TB, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
