package storagetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// announceTests: every backend announces unexpired access tokens it
// removes on storage.RevokedAccessChannel (the forward-auth deny list
// depends on it), one payload per token or one overflow marker, and stays
// silent about expired ones.
var announceTests = []test{
	{"announce/revoke-access-token", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "a")
		ch := subscribeRevoked(t, s)
		exp := now().Add(time.Hour)
		must(t, s.CreateAccessTokenSession(ctx(t), "at-1", newRequestExp("req-1", c, "alice", exp)))
		must(t, s.CreateAccessTokenSession(ctx(t), "at-2", newRequestExp("req-1", c, "alice", exp)))
		must(t, s.CreateAccessTokenSession(ctx(t), "at-old", newRequestExp("req-1", c, "alice", now().Add(-time.Minute))))
		must(t, s.CreateAccessTokenSession(ctx(t), "at-other", newRequestExp("req-2", c, "bob", exp)))
		must(t, s.RevokeAccessToken(ctx(t), "req-1"))
		got := collectUntil(t, ch, markerRevoke(t, s, c))
		want := []string{storage.RevokedAccessPayload(storage.HashKey("at-1"), exp), storage.RevokedAccessPayload(storage.HashKey("at-2"), exp)}
		slices.Sort(got)
		slices.Sort(want)
		wantEqual(t, "announcements", want, got)
	}},
	{"announce/refresh-rotation", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "a")
		ch := subscribeRevoked(t, s)
		exp := now().Add(time.Hour)
		must(t, s.CreateAccessTokenSession(ctx(t), "at-1", newRequestExp("req-1", c, "alice", exp)))
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-1", "at-1", newRequestExp("req-1", c, "alice", exp)))
		must(t, s.RotateRefreshToken(ctx(t), "req-1", "rt-1"))
		got := collectUntil(t, ch, markerRevoke(t, s, c))
		wantEqual(t, "announcements", []string{storage.RevokedAccessPayload(storage.HashKey("at-1"), exp)}, got)
	}},
	{"announce/containment-overflow", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "a")
		other := createClient(t, s, "b")
		ch := subscribeRevoked(t, s)
		for i := range storage.RevokedAccessListLimit + 1 {
			must(t, s.CreateAccessTokenSession(ctx(t), fmt.Sprintf("at-%d", i), newRequest(fmt.Sprintf("req-%d", i), c, "alice")))
		}
		n, err := s.RevokeTokensByClient(ctx(t), "a")
		must(t, err)
		if n != storage.RevokedAccessListLimit+1 {
			t.Fatalf("revoked %d", n)
		}
		got := collectUntil(t, ch, markerRevoke(t, s, other))
		wantEqual(t, "announcements", []string{storage.RevokedAccessOverflow}, got)
	}},
	{"announce/expired-rows-are-silent", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "a")
		ch := subscribeRevoked(t, s)
		must(t, s.CreateAccessTokenSession(ctx(t), "at-old", newRequestExp("req-1", c, "alice", now().Add(-time.Minute))))
		_, err := s.DeleteExpired(ctx(t), now(), 100)
		must(t, err)
		if got := collectUntil(t, ch, markerRevoke(t, s, c)); len(got) != 0 {
			t.Fatalf("expired token announced: %v", got)
		}
	}},
}

func subscribeRevoked(t *testing.T, s storage.Store) <-chan string {
	t.Helper()
	ch, err := s.Subscribe(ctx(t), storage.RevokedAccessChannel)
	must(t, err)
	return ch
}

// markerRevoke revokes a fresh token of its own and returns its payload:
// announcements arrive in commit order, so everything before the marker
// is what the test's own action announced, with no waiting on time.
func markerRevoke(t *testing.T, s storage.Store, c *storage.Client) string {
	t.Helper()
	exp := now().Add(2 * time.Hour)
	must(t, s.CreateAccessTokenSession(ctx(t), "at-marker", newRequestExp("req-marker", c, "marker", exp)))
	must(t, s.RevokeAccessToken(ctx(t), "req-marker"))
	return storage.RevokedAccessPayload(storage.HashKey("at-marker"), exp)
}

// collectUntil returns the payloads received before marker.
func collectUntil(t *testing.T, ch <-chan string, marker string) []string {
	t.Helper()
	got := []string{}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case p, ok := <-ch:
			if !ok {
				t.Fatalf("subscription ended; got %v", got)
			}
			if p == marker {
				return got
			}
			got = append(got, p)
		case <-deadline:
			t.Fatalf("marker never announced; got %v", got)
		}
	}
}
