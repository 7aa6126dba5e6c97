package storagetest

import (
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// clockSlack is how far a backend's clock may be from time.Now() for the
// suite (see the package doc): store-assigned timestamps are checked to be
// "now" within it, which a zero or garbage timestamp is not.
const clockSlack = time.Hour

// assignedWindow checks that a timestamp the store assigned lies between
// before and after, give or take clockSlack.
func assignedWindow(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	if got.Before(before.Add(-clockSlack)) || got.After(after.Add(clockSlack)) {
		t.Fatalf("%s: store assigned %s, want a time between %s and %s (±%s)", what, got, before, after, clockSlack)
	}
}

// assignedCases: what the store assigns (versions, zero timestamps, audit
// ids) is written back into the caller's struct and equals what a later
// read returns, so callers (the admin API's ETag and Location, audit
// references) can use the struct they passed without reading it again.
var assignedCases = []test{
	{"client", func(t *testing.T, s storage.Store) {
		c := newClient("app")
		c.CreatedAt, c.UpdatedAt = time.Time{}, time.Time{}
		before := time.Now()
		must(t, s.CreateClient(ctx(t), c))
		assignedWindow(t, "CreatedAt", c.CreatedAt, before, time.Now())
		if !c.UpdatedAt.Equal(c.CreatedAt) || c.Version != 1 {
			t.Fatalf("created client: UpdatedAt %s (want CreatedAt %s), Version %d (want 1)", c.UpdatedAt, c.CreatedAt, c.Version)
		}
		got, err := s.ClientByID(ctx(t), "app")
		must(t, err)
		wantEqual(t, "created client", c, got)

		created := c.CreatedAt
		c.Name = "Renamed"
		c.CreatedAt = created.Add(-time.Hour) // creation time is not the caller's to change
		c.UpdatedAt = time.Time{}
		before = time.Now()
		must(t, s.UpdateClient(ctx(t), c, 1))
		assignedWindow(t, "UpdatedAt", c.UpdatedAt, before, time.Now())
		if c.UpdatedAt.Before(created) {
			t.Fatalf("updated client: UpdatedAt %s before CreatedAt %s", c.UpdatedAt, created)
		}
		if !c.CreatedAt.Equal(created) || c.Version != 2 {
			t.Fatalf("updated client: CreatedAt %s (want %s), Version %d (want 2)", c.CreatedAt, created, c.Version)
		}
		got, err = s.ClientByID(ctx(t), "app")
		must(t, err)
		wantEqual(t, "updated client", c, got)
	}},
	{"user", func(t *testing.T, s storage.Store) {
		u := newUser("u-1", "alice")
		u.CreatedAt, u.UpdatedAt = time.Time{}, time.Time{}
		before := time.Now()
		must(t, s.CreateUser(ctx(t), u))
		assignedWindow(t, "CreatedAt", u.CreatedAt, before, time.Now())
		if !u.UpdatedAt.Equal(u.CreatedAt) || u.Version != 1 {
			t.Fatalf("created user: UpdatedAt %s (want CreatedAt %s), Version %d (want 1)", u.UpdatedAt, u.CreatedAt, u.Version)
		}
		got, err := s.UserByID(ctx(t), "u-1")
		must(t, err)
		wantEqual(t, "created user", u, got)

		created := u.CreatedAt
		u.Email = "new@example.com"
		u.CreatedAt, u.UpdatedAt = time.Time{}, time.Time{}
		before = time.Now()
		must(t, s.UpdateUser(ctx(t), u, 1))
		assignedWindow(t, "UpdatedAt", u.UpdatedAt, before, time.Now())
		if !u.CreatedAt.Equal(created) || u.Version != 2 {
			t.Fatalf("updated user: CreatedAt %s (want %s), Version %d (want 2)", u.CreatedAt, created, u.Version)
		}
		got, err = s.UserByID(ctx(t), "u-1")
		must(t, err)
		wantEqual(t, "updated user", u, got)
	}},
	{"api-key", func(t *testing.T, s storage.Store) {
		k := newAPIKey("key-1", "deploy")
		k.CreatedAt = time.Time{}
		before := time.Now()
		must(t, s.CreateAPIKey(ctx(t), k))
		assignedWindow(t, "CreatedAt", k.CreatedAt, before, time.Now())
		if k.Version != 1 {
			t.Fatalf("created api key: Version %d, want 1", k.Version)
		}
		got, err := s.APIKeyByID(ctx(t), "key-1")
		must(t, err)
		wantEqual(t, "created api key", k, got)

		created := k.CreatedAt
		k.Name = "renamed"
		k.CreatedAt = time.Time{}
		must(t, s.UpdateAPIKey(ctx(t), k, 1))
		if !k.CreatedAt.Equal(created) || k.Version != 2 {
			t.Fatalf("updated api key: CreatedAt %s (want %s), Version %d (want 2)", k.CreatedAt, created, k.Version)
		}
		got, err = s.APIKeyByID(ctx(t), "key-1")
		must(t, err)
		wantEqual(t, "updated api key", k, got)
	}},
	{"consent-signing-key-block-audit", func(t *testing.T, s storage.Store) {
		before := time.Now()
		c := &storage.Consent{Subject: "alice", ClientID: "app", Scopes: []string{"openid"}}
		must(t, s.SaveConsent(ctx(t), c))
		k := newSigningKey("k1", storage.KeyNext, time.Time{})
		k.ActivateAt, k.DeleteAfter = time.Time{}, time.Time{}
		must(t, s.CreateSigningKey(ctx(t), k))
		b := &storage.Block{Kind: "ip", Value: "192.0.2.9", Reason: "test", ExpiresAt: now().Add(time.Hour)}
		must(t, s.PutBlock(ctx(t), b))
		e := &storage.AuditEvent{Event: "login", Actor: "alice"}
		must(t, s.AppendAudit(ctx(t), e))
		after := time.Now()

		assignedWindow(t, "consent GrantedAt", c.GrantedAt, before, after)
		gotConsent, err := s.GetConsent(ctx(t), "alice", "app")
		must(t, err)
		wantEqual(t, "consent", c, gotConsent)

		assignedWindow(t, "signing key CreatedAt", k.CreatedAt, before, after)
		wantEqual(t, "signing key", k, signingKeys(t, s)["k1"])

		assignedWindow(t, "block CreatedAt", b.CreatedAt, before, after)
		blocks, err := s.ListBlocks(ctx(t), now())
		must(t, err)
		wantEqual(t, "blocks", []*storage.Block{b}, blocks)

		assignedWindow(t, "audit Time", e.Time, before, after)
		if e.ID == 0 {
			t.Fatal("AppendAudit left ID zero")
		}
		events, err := s.ListAudit(ctx(t), storage.AuditFilter{})
		must(t, err)
		wantEqual(t, "audit events", []*storage.AuditEvent{e}, events)
	}},
}

// assignedTests runs assignedCases on one store (their records do not
// overlap), which keeps a database-backed suite fast.
var assignedTests = []test{{"store-assigned", func(t *testing.T, s storage.Store) {
	for _, tc := range assignedCases {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}}}
