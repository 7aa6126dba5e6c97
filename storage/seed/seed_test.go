package seed_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/seed"
)

const yamlDoc = `
clients:
  - client_id: svc
    client_secret: s3cret-s3cret-s3cret
    client_name: Service
    grant_types: [client_credentials]
    scope: "api:read api:write"
    access_token_lifespan: 5m
  - client_id: spa
    client_name: SPA
    application_type: native
    redirect_uris: ["http://127.0.0.1/cb"]
    token_endpoint_auth_method: none
users:
  - username: Alice
    password: correct horse battery staple
    email: alice@example.com
`

func newApplier(t *testing.T) (*seed.Applier, *memory.Store) {
	t.Helper()
	h, err := hash.New(hash.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	st := memory.New(memory.Config{})
	return &seed.Applier{Store: st, Hasher: h}, st
}

func TestApplyCreatesThenUpdatesIdempotently(t *testing.T) {
	ctx := context.Background()
	a, st := newApplier(t)
	doc, err := seed.Parse(strings.NewReader(yamlDoc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Apply(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	if res.ClientsCreated != 2 || res.UsersCreated != 1 {
		t.Fatalf("first apply: %+v", res)
	}
	svc, err := st.ClientByID(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svc.SecretHash, "$argon2id$") || strings.Contains(svc.SecretHash, "s3cret") {
		t.Fatalf("secret not stored as an Argon2id hash: %q", svc.SecretHash)
	}
	if err := a.Hasher.Compare(ctx, []byte(svc.SecretHash), []byte("s3cret-s3cret-s3cret")); err != nil {
		t.Fatalf("stored hash does not verify the declared secret: %v", err)
	}
	if svc.AccessTokenLifespan.Minutes() != 5 || svc.TokenEndpointAuthMethod != storage.AuthMethodSecretBasic {
		t.Fatalf("defaults/lifespan wrong: %+v", svc)
	}
	spa, _ := st.ClientByID(ctx, "spa")
	if !spa.IsPublic() || spa.SecretHash != "" || len(spa.ResponseTypes) != 1 {
		t.Fatalf("public client wrong: %+v", spa)
	}
	u, err := st.UserByUsername(ctx, "alice")
	if err != nil || u.PasswordHash == "" || strings.Contains(u.PasswordHash, "horse") {
		t.Fatalf("user: %+v %v", u, err)
	}

	res, err = a.Apply(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	if res.ClientsUpdated != 2 || res.UsersUpdated != 1 || res.ClientsCreated != 0 {
		t.Fatalf("second apply: %+v", res)
	}
	again, _ := st.ClientByID(ctx, "svc")
	if again.SecretHash != svc.SecretHash {
		t.Fatal("re-applying the same secret must keep the stored hash")
	}
}

func TestApplyRejectsInvalidFileAndChangesNothing(t *testing.T) {
	cases := []struct {
		name, doc, want string
	}{
		{"case=http redirect to non-loopback", `
clients:
  - client_id: bad
    client_secret: x
    redirect_uris: ["http://example.com/cb"]
`, "http is only allowed for loopback"},
		{"case=fragment in redirect", `
clients:
  - client_id: bad
    client_secret: x
    redirect_uris: ["https://example.com/cb#frag"]
`, "fragment"},
		{"case=implicit grant", `
clients:
  - client_id: bad
    client_secret: x
    grant_types: [implicit]
`, "unsupported grant type"},
		{"case=confidential without secret", `
clients:
  - client_id: bad
    grant_types: [client_credentials]
`, "client_secret is required"},
		{"case=public with client credentials", `
clients:
  - client_id: bad
    token_endpoint_auth_method: none
    grant_types: [client_credentials]
`, "cannot use client_credentials"},
		{"case=user without password", `
users:
  - username: bob
`, "password are required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, st := newApplier(t)
			doc, err := seed.Parse(strings.NewReader(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.Apply(context.Background(), doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
			if _, err := st.ClientByID(context.Background(), "bad"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("invalid file must change nothing, got %v", err)
			}
		})
	}
}

func TestParseRejectsUnknownFieldsAndAcceptsJSON(t *testing.T) {
	if _, err := seed.Parse(strings.NewReader("clients:\n  - client_id: a\n    clientsecret: typo\n")); err == nil {
		t.Fatal("unknown YAML field must be an error")
	}
	if _, err := seed.Parse(strings.NewReader(`{"clients":[{"client_id":"a","secret":"typo"}]}`)); err == nil {
		t.Fatal("unknown JSON field must be an error")
	}
	f, err := seed.Parse(strings.NewReader(`{"clients":[{"client_id":"a","client_secret":"b","grant_types":["client_credentials"],"access_token_lifespan":"90s"}],"users":[{"username":"u","password":"p"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Clients) != 1 || time.Duration(f.Clients[0].AccessTokenLifespan) != 90*time.Second || len(f.Users) != 1 {
		t.Fatalf("parsed: %+v", f)
	}
	if _, err := seed.Parse(strings.NewReader("clients:\n  - client_id: a\n    access_token_lifespan: soon\n")); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Fatalf("bad duration must be reported, got %v", err)
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	a, st := newApplier(t)
	doc, err := seed.Parse(strings.NewReader(`
clients:
  - client_id: good
    client_secret: fine-secret
    grant_types: [client_credentials]
  - client_id: bad
    client_secret: x
    grant_types: [password]
users:
  - username: carol
    password: pw
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(context.Background(), doc); err == nil {
		t.Fatal("want an error for the password grant")
	}
	if _, err := st.ClientByID(context.Background(), "good"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("valid entries of an invalid file must not be applied: %v", err)
	}
	if _, err := st.UserByUsername(context.Background(), "carol"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("users of an invalid file must not be applied: %v", err)
	}
}

// TestExampleSeedFileApplies keeps the example shipped for docker compose
// and the README valid.
func TestExampleSeedFileApplies(t *testing.T) {
	f, err := os.Open("../../docs/seed.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := seed.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	// The example's admin reads its password from a Compose secret; point
	// it at a file of our own.
	pw := filepath.Join(t.TempDir(), "admin.password")
	if err := os.WriteFile(pw, []byte("example-admin-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admins := 0
	for i := range doc.Users {
		if doc.Users[i].PasswordFile != "" {
			doc.Users[i].PasswordFile = pw
			admins++
		}
	}
	if admins != 1 {
		t.Fatalf("the example has %d users with password_file, want the one admin", admins)
	}
	if err := doc.LoadPasswordFiles("../../docs"); err != nil {
		t.Fatal(err)
	}
	a, st := newApplier(t)
	res, err := a.Apply(context.Background(), doc)
	if err != nil {
		t.Fatalf("the example seed file is invalid: %v", err)
	}
	if res.ClientsCreated != len(doc.Clients) || res.UsersCreated != len(doc.Users) {
		t.Fatalf("applied %+v", res)
	}
	admin, err := st.UserByUsername(context.Background(), "admin")
	if err != nil || len(admin.AdminScopes) != 6 {
		t.Fatalf("example admin: %+v, %v (want every admin scope)", admin, err)
	}
}

// TestReapplyKeepsSecretsChangedSince: a secret or password changed after
// creation (an admin rotating it after an incident) survives re-applying
// the file at the next restart.
func TestReapplyKeepsSecretsChangedSince(t *testing.T) {
	ctx := context.Background()
	a, st := newApplier(t)
	doc, err := seed.Parse(strings.NewReader(yamlDoc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, doc); err != nil {
		t.Fatal(err)
	}
	c, _ := st.ClientByID(ctx, "svc")
	rotated, _ := a.Hasher.Hash(ctx, []byte("rotated-after-incident"))
	c.SecretHash = string(rotated)
	if err := st.UpdateClient(ctx, c, c.Version); err != nil {
		t.Fatal(err)
	}
	u, _ := st.UserByUsername(ctx, "alice")
	reset, _ := a.Hasher.Hash(ctx, []byte("reset-by-admin"))
	u.PasswordHash = string(reset)
	if err := st.UpdateUser(ctx, u, u.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, doc); err != nil {
		t.Fatal(err)
	}
	c, _ = st.ClientByID(ctx, "svc")
	if a.Hasher.Compare(ctx, []byte(c.SecretHash), []byte("rotated-after-incident")) != nil {
		t.Fatal("re-applying the seed put back the old client secret")
	}
	u, _ = st.UserByUsername(ctx, "alice")
	if a.Hasher.Compare(ctx, []byte(u.PasswordHash), []byte("reset-by-admin")) != nil {
		t.Fatal("re-applying the seed put back the old password")
	}
}
