package apikeys

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys/apikey"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/storage"
)

func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run("backend="+b.name, func(t *testing.T) { fn(t, b) })
	}
}

func TestCreateVerifyRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := setup(t, b)
		ctx := context.Background()
		tok, k := f.create(t, func(r *CreateRequest) {
			r.Scopes = []string{ScopeIntrospect, ScopeClientsRead, ScopeIntrospect}
			r.OwnerType, r.OwnerID = OwnerClient, "rs-1"
		})
		parsed, err := apikey.Parse(tok)
		if err != nil || parsed.ID != k.ID {
			t.Fatalf("token does not parse to the key id: %v", err)
		}
		if k.Hash != "" || k.SealedSuccessorSecret != nil {
			t.Fatal("Create returned the stored hash")
		}
		stored, err := f.store.APIKeyByID(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stored.Hash, "$argon2id$v=19$") || strings.Contains(stored.Hash, parsed.Secret) {
			t.Fatalf("stored hash is not an Argon2id PHC string of the secret")
		}
		if stored.RotationPeriod != DefaultRotationPeriod || stored.GracePeriod != DefaultGracePeriod ||
			!stored.RotateAt.Equal(f.clock.Now().Add(DefaultRotationPeriod)) || !stored.ExpiresAt.IsZero() {
			t.Fatalf("policy = %v/%v rotate at %v expires %v", stored.RotationPeriod, stored.GracePeriod, stored.RotateAt, stored.ExpiresAt)
		}
		p, got, err := f.svc.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		want := "client-rs-1-" + k.ID + "-admin:clients:read,introspect"
		if s := p.OwnerType + "-" + p.OwnerID + "-" + p.KeyID + "-" + strings.Join(p.Scopes, ","); s != want {
			t.Fatalf("principal %s, want %s", s, want)
		}
		if !p.Has(ScopeIntrospect) || p.Has(ScopeClientsWrite) {
			t.Fatal("Has disagrees with scopes")
		}
		if got.Status != storage.APIKeyActive || got.Hash != "" {
			t.Fatalf("returned key status %q or carries its hash", got.Status)
		}
		if f.audit.count("apikey.create") != 1 {
			t.Fatal("create not audited")
		}
	})
}

func TestUnknownIDAndWrongSecretLookAlike(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := setup(t, b)
		ctx := context.Background()
		tok, _ := f.create(t, nil)
		good, _ := apikey.Parse(tok)
		other, _ := apikey.Generate(nil)
		ch := &countingHasher{cacheHasher: f.svc.hasher}
		f.svc.hasher = ch

		// Warm the cache with the right secret: a wrong secret must still
		// cost a full comparison.
		if _, _, err := f.svc.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name              string
			token             string
			compares, dummies int64
		}{
			{"case=unknown-id", apikey.Key{ID: other.ID, Secret: good.Secret}.String(), 0, 1},
			{"case=wrong-secret", apikey.Key{ID: good.ID, Secret: other.Secret}.String(), 1, 0},
		} {
			ch.compares.Store(0)
			ch.dummies.Store(0)
			before := f.cached.Len()
			_, _, err := f.svc.Verify(ctx, tc.token)
			if err != ErrInvalid { //nolint:errorlint // the very same value is the point
				t.Fatalf("%s: err = %v, want exactly ErrInvalid", tc.name, err)
			}
			if ch.compares.Load() != tc.compares || ch.dummies.Load() != tc.dummies {
				t.Fatalf("%s: %d compares, %d dummy compares", tc.name, ch.compares.Load(), ch.dummies.Load())
			}
			if f.cached.Len() != before {
				t.Fatalf("%s: a failure changed the cache", tc.name)
			}
		}
	})
}

func TestMalformedNeverTouchesStore(t *testing.T) {
	c := newClock()
	f := newService(t, backends[0].open(t, c.Now, 1)[0], c, newBox(t), fastParams)
	tok, _ := f.create(t, nil)
	cs := &countingStore{APIKeyStore: f.svc.store}
	f.svc.store = cs
	ch := &countingHasher{cacheHasher: f.svc.hasher}
	f.svc.hasher = ch
	last := tok[len(tok)-1]
	flipped := byte('A')
	if last == 'A' {
		flipped = 'B'
	}
	for _, tc := range []struct{ name, token string }{
		{"case=empty", ""},
		{"case=prefix-only", "bwk_"},
		{"case=truncated", tok[:len(tok)-1]},
		{"case=extended", tok + "A"},
		{"case=bad-checksum", tok[:len(tok)-1] + string(flipped)},
		{"case=wrong-prefix", "bwx_" + tok[4:]},
		{"case=jwt", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"},
		{"case=non-base62", tok[:10] + "-" + tok[11:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.svc.Verify(context.Background(), tc.token)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if _, _, err := f.svc.CollectOrRotate(context.Background(), tc.token); !errors.Is(err, ErrMalformed) {
				t.Fatalf("CollectOrRotate err = %v, want ErrMalformed", err)
			}
		})
	}
	if n := cs.calls.Load(); n != 0 {
		t.Fatalf("malformed tokens made %d store calls", n)
	}
	if ch.compares.Load()+ch.dummies.Load() != 0 {
		t.Fatal("malformed tokens were hashed")
	}
}

func TestRehashUpgradesWeakHash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := newClock()
		st := b.open(t, c.Now, 1)[0]
		box := newBox(t)
		weak := newService(t, st, c, box, hash.Params{Memory: 32, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
		tok, k := weak.create(t, nil)
		before, _ := st.APIKeyByID(context.Background(), k.ID)
		if !strings.Contains(before.Hash, "m=32,t=1,") {
			t.Fatalf("weak hash has unexpected params")
		}
		strong := newService(t, st, c, box, hash.Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32})
		if _, _, err := strong.svc.Verify(context.Background(), tok); err != nil {
			t.Fatalf("Verify with weak stored hash: %v", err)
		}
		after, _ := st.APIKeyByID(context.Background(), k.ID)
		if !strings.Contains(after.Hash, "m=128,t=2,") || strong.cached.NeedsRehash([]byte(after.Hash)) {
			t.Fatal("stored hash was not upgraded to current parameters")
		}
		if after.Version != before.Version+1 {
			t.Fatalf("version %d → %d", before.Version, after.Version)
		}
		// The upgraded hash verifies, from a fresh replica too.
		fresh := newService(t, st, c, box, hash.Params{Memory: 128, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32})
		if _, _, err := fresh.svc.Verify(context.Background(), tok); err != nil {
			t.Fatalf("Verify after upgrade: %v", err)
		}
		if _, _, err := weak.svc.Verify(context.Background(), "bwk_"+k.ID+"_"+strings.Repeat("x", 49)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("sanity: %v", err)
		}
	})
}

func TestRevokeEvictsOnEveryReplica(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := newClock()
		stores := b.open(t, c.Now, 2)
		box := newBox(t)
		a := newService(t, stores[0], c, box, fastParams)
		rb := newService(t, stores[1], c, box, fastParams)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() { defer close(done); rb.svc.Run(ctx) }()
		defer func() { cancel(); <-done }()

		tok, k := a.create(t, nil)
		// Make sure B's subscription is live: announce the key until B's
		// cache entry for it disappears.
		waitFor(t, "B subscribed", func() bool {
			if _, _, err := rb.svc.Verify(ctx, tok); err != nil {
				t.Fatalf("B Verify: %v", err)
			}
			if rb.cached.Len() != 1 {
				t.Fatalf("B cache holds %d entries", rb.cached.Len())
			}
			_ = stores[0].Notify(ctx, NotifyChannel, k.ID)
			return waitBriefly(func() bool { return rb.cached.Len() == 0 })
		})
		if _, _, err := rb.svc.Verify(ctx, tok); err != nil || rb.cached.Len() != 1 {
			t.Fatalf("B Verify (now cached): %v", err)
		}
		if err := a.svc.Revoke(ctx, k.ID, "admin:alice"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "B evicts the revoked key", func() bool { return rb.cached.Len() == 0 })
		waitFor(t, "B refuses the revoked key", func() bool {
			_, _, err := rb.svc.Verify(ctx, tok)
			return errors.Is(err, ErrRevoked)
		})
		if a.audit.count("apikey.revoke") != 1 {
			t.Fatal("revoke not audited")
		}
	})
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitBriefly(cond func() bool) bool {
	for range 10 {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func TestRevokedAndExpiredKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := setup(t, b)
		ctx := context.Background()
		revTok, rev := f.create(t, nil)
		expTok, exp := f.create(t, func(r *CreateRequest) { r.ExpiresIn = time.Hour })
		if err := f.svc.Revoke(ctx, rev.ID, "admin:alice"); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Revoke(ctx, rev.ID, "admin:alice"); err != nil {
			t.Fatalf("second revoke: %v", err)
		}
		if _, _, err := f.svc.Verify(ctx, revTok); !errors.Is(err, ErrRevoked) {
			t.Fatalf("revoked: %v", err)
		}
		// Without the secret, a revoked key looks like any wrong secret.
		other, _ := apikey.Generate(nil)
		if _, _, err := f.svc.Verify(ctx, apikey.Key{ID: rev.ID, Secret: other.Secret}.String()); err != ErrInvalid { //nolint:errorlint
			t.Fatalf("wrong secret on revoked key: %v", err)
		}
		f.clock.Advance(time.Hour - time.Second)
		if _, _, err := f.svc.Verify(ctx, expTok); err != nil {
			t.Fatalf("1s before expiry: %v", err)
		}
		f.clock.Advance(time.Second)
		if _, _, err := f.svc.Verify(ctx, expTok); !errors.Is(err, ErrExpired) {
			t.Fatalf("at expiry: %v", err)
		}
		if f.audit.count("apikey.use_after_expiry") != 1 {
			t.Fatal("use after expiry not audited")
		}
		if err := f.svc.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := f.svc.Get(ctx, exp.ID)
		if got.Status != storage.APIKeyExpired || f.audit.count("apikey.expire") != 1 {
			t.Fatalf("after tick: status %q, %d expire events", got.Status, f.audit.count("apikey.expire"))
		}
		if _, _, err := f.svc.Verify(ctx, expTok); !errors.Is(err, ErrExpired) {
			t.Fatalf("expired: %v", err)
		}
		if _, _, err := f.svc.CollectOrRotate(ctx, revTok); !errors.Is(err, ErrRevoked) {
			t.Fatalf("self-rotate of revoked key: %v", err)
		}
	})
}

func TestCreateValidationAndEscalation(t *testing.T) {
	c := newClock()
	f := newService(t, backends[0].open(t, c.Now, 1)[0], c, newBox(t), fastParams)
	base := CreateRequest{Name: "k", OwnerType: OwnerUser, OwnerID: "u1", Scopes: []string{ScopeClientsRead}}
	for _, tc := range []struct {
		name    string
		mutate  func(*CreateRequest)
		wantErr error
		fields  []string
	}{
		{"case=superuser-any-scope", func(r *CreateRequest) { r.Scopes = AllScopes }, nil, nil},
		{"case=subset-of-creator", func(r *CreateRequest) { r.CreatorScopes = []string{ScopeClientsRead, ScopeAPIKeys} }, nil, nil},
		{"case=escalation", func(r *CreateRequest) {
			r.CreatorScopes = []string{ScopeAPIKeys, ScopeClientsRead}
			r.Scopes = []string{ScopeClientsRead, ScopeKeys}
		}, ErrScopeEscalation, nil},
		{"case=empty-creator-holds-nothing", func(r *CreateRequest) { r.CreatorScopes = []string{} }, ErrScopeEscalation, nil},
		{"case=every-problem-at-once", func(r *CreateRequest) {
			*r = CreateRequest{Name: " ", OwnerType: "robot", Scopes: []string{"admin:*"}, ExpiresIn: -1,
				RotationPeriod: time.Minute, GracePeriod: time.Hour}
		}, nil, []string{"name", "owner_type", "owner_id", "scopes", "expires_in", "rotation_period", "grace_period"}},
		{"case=grace-not-shorter", func(r *CreateRequest) { r.RotationPeriod, r.GracePeriod = 2*time.Hour, 2*time.Hour }, nil, []string{"grace_period"}},
		{"case=no-scopes", func(r *CreateRequest) { r.Scopes = nil }, nil, []string{"scopes"}},
		// Bidi overrides and zero-width characters make a name or owner
		// display as something else in the console and CLI.
		{"case=format-characters", func(r *CreateRequest) { r.Name, r.OwnerID = "prod\u202egnp.key", "u\u200b1" }, nil, []string{"name", "owner_id"}},
		{"case=invalid-utf8", func(r *CreateRequest) { r.Name = "k\xff" }, nil, []string{"name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := base
			tc.mutate(&req)
			_, k, err := f.svc.Create(context.Background(), req)
			var ve *storage.ValidationError
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) || k != nil {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			case tc.fields != nil:
				if !errors.As(err, &ve) {
					t.Fatalf("err = %v, want *storage.ValidationError", err)
				}
				got := map[string]bool{}
				for _, p := range ve.Problems {
					got[p.Field] = true
				}
				for _, fld := range tc.fields {
					if !got[fld] {
						t.Errorf("no problem reported for %s (got %v)", fld, ve.Problems)
					}
				}
			default:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			}
		})
	}
}

func TestSelfRotateEarlyAndAdminRotate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := setup(t, b)
		ctx := context.Background()
		tok, k := f.create(t, func(r *CreateRequest) { r.GracePeriod = 48 * time.Hour })

		newTok, succ, err := f.svc.CollectOrRotate(ctx, tok)
		if err != nil {
			t.Fatalf("early self-rotate: %v", err)
		}
		if succ.ReplacesID != k.ID || succ.Status != storage.APIKeyActive {
			t.Fatalf("successor %+v", succ)
		}
		old, _ := f.store.APIKeyByID(ctx, k.ID)
		if old.Status != storage.APIKeyRotating || old.ReplacedByID != succ.ID ||
			!old.ExpiresAt.Equal(f.clock.Now().Add(48*time.Hour)) || old.SealedSuccessorSecret != nil {
			t.Fatalf("old key after self-rotate: status %q replaced by %q expires %v sealed %d",
				old.Status, old.ReplacedByID, old.ExpiresAt, len(old.SealedSuccessorSecret))
		}
		if _, _, err := f.svc.Verify(ctx, newTok); err != nil {
			t.Fatalf("successor token: %v", err)
		}
		if _, got, err := f.svc.Verify(ctx, tok); err != nil || got.Status != storage.APIKeyRotating {
			t.Fatalf("old token during grace: %v", err)
		}
		// Nothing to collect: the successor was handed out already.
		if _, _, err := f.svc.CollectOrRotate(ctx, tok); !errors.Is(err, ErrNoPendingSuccessor) {
			t.Fatalf("second self-rotate: %v", err)
		}

		// Admin rotation of the successor: token shown once, nothing sealed.
		adminTok, succ2, err := f.svc.Rotate(ctx, succ.ID, "admin:alice")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.Verify(ctx, adminTok); err != nil || succ2.ReplacesID != succ.ID {
			t.Fatalf("admin-rotated token: %v", err)
		}
		if _, _, err := f.svc.CollectOrRotate(ctx, newTok); !errors.Is(err, ErrNoPendingSuccessor) {
			t.Fatalf("collect after admin rotate: %v", err)
		}
		if _, _, err := f.svc.Rotate(ctx, succ.ID, "admin:alice"); !errors.Is(err, ErrNotActive) {
			t.Fatalf("rotating a rotating key: %v", err)
		}
		if f.audit.count("apikey.rotate") != 2 {
			t.Fatalf("%d rotate events", f.audit.count("apikey.rotate"))
		}
	})
}

func TestLastUseIsBatched(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := setup(t, b)
		ctx := context.Background()
		tok, k := f.create(t, nil)
		for range 3 {
			f.clock.Advance(time.Minute)
			if _, _, err := f.svc.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := f.svc.Get(ctx, k.ID)
		if !got.LastUsedAt.IsZero() {
			t.Fatal("last use written per request")
		}
		if err := f.svc.FlushTouches(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ = f.svc.Get(ctx, k.ID)
		if !got.LastUsedAt.Equal(f.clock.Now()) {
			t.Fatalf("LastUsedAt = %v, want %v", got.LastUsedAt, f.clock.Now())
		}
	})
}

func TestTickOnlyUnderLock(t *testing.T) {
	f := setup(t, backends[0])
	ctx := context.Background()
	_, k := f.create(t, func(r *CreateRequest) { r.RotationPeriod, r.GracePeriod = 2*time.Hour, time.Hour })
	f.clock.Advance(3 * time.Hour)
	release, ok, err := f.store.TryLock(ctx, LockName)
	if err != nil || !ok {
		t.Fatal("could not take the scheduler lock")
	}
	if err := f.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.svc.Get(ctx, k.ID); got.Status != storage.APIKeyActive {
		t.Fatal("Tick acted without the lock")
	}
	release()
	if err := f.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.svc.Get(ctx, k.ID); got.Status != storage.APIKeyRotating {
		t.Fatalf("Tick with the lock: status %q", got.Status)
	}
}

// TestScheduledRotationHandover follows a well-behaved caller through two
// scheduled rotations, one simulated day at a time.
func TestScheduledRotationHandover(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := setup(t, b)
		ctx := context.Background()
		const day = 24 * time.Hour
		cur, first := f.create(t, func(r *CreateRequest) { r.RotationPeriod, r.GracePeriod = 90*day, 7*day })
		curID := first.ID
		var (
			oldTok, oldID string
			oldEnd        time.Time
			handovers     []int
		)
		tick := func() {
			t.Helper()
			if err := f.svc.Tick(ctx); err != nil {
				t.Fatalf("Tick: %v", err)
			}
		}
		for d := 1; d <= 200; d++ {
			next := f.clock.Now().Add(day)
			if oldTok != "" && !next.Before(oldEnd) {
				// The old key works until the very end of grace...
				f.clock.Set(oldEnd.Add(-time.Second))
				tick()
				if _, _, err := f.svc.Verify(ctx, oldTok); err != nil {
					t.Fatalf("old key 1s before end of grace: %v", err)
				}
				// ...and not a second after.
				f.clock.Set(oldEnd.Add(time.Second))
				tick()
				if _, _, err := f.svc.Verify(ctx, oldTok); !errors.Is(err, ErrExpired) {
					t.Fatalf("old key 1s after end of grace: %v", err)
				}
				got, _ := f.store.APIKeyByID(ctx, oldID)
				if got.Status != storage.APIKeyExpired || got.SealedSuccessorSecret != nil {
					t.Fatalf("old key after grace: %q", got.Status)
				}
				oldTok = ""
				next = f.clock.Now() // the clock never runs backwards
			}
			f.clock.Set(next)
			tick()
			// The caller's request of the day.
			_, k, err := f.svc.Verify(ctx, cur)
			if err != nil {
				t.Fatalf("day %d: caller's request failed: %v", d, err)
			}
			if k.ID != curID {
				t.Fatalf("day %d: verified as %s", d, k.ID)
			}
			if k.Status != storage.APIKeyRotating {
				continue
			}
			stored, _ := f.store.APIKeyByID(ctx, k.ID)
			if len(stored.SealedSuccessorSecret) == 0 {
				t.Fatalf("day %d: rotating key without sealed successor", d)
			}
			newTok, succ, err := f.svc.CollectOrRotate(ctx, cur)
			if err != nil {
				t.Fatalf("day %d: collect: %v", d, err)
			}
			if succ.ReplacesID != k.ID {
				t.Fatalf("day %d: successor replaces %q", d, succ.ReplacesID)
			}
			stored, _ = f.store.APIKeyByID(ctx, k.ID)
			if stored.SealedSuccessorSecret != nil {
				t.Fatalf("day %d: sealed secret not erased after collection", d)
			}
			if _, _, err := f.svc.CollectOrRotate(ctx, cur); !errors.Is(err, ErrNoPendingSuccessor) {
				t.Fatalf("day %d: second collect: %v", d, err)
			}
			oldTok, oldID, oldEnd = cur, k.ID, k.ExpiresAt
			if !oldEnd.Equal(f.clock.Now().Add(7 * day)) {
				t.Fatalf("day %d: grace ends %v", d, oldEnd)
			}
			cur, curID = newTok, succ.ID
			if _, _, err := f.svc.Verify(ctx, cur); err != nil {
				t.Fatalf("day %d: new key: %v", d, err)
			}
			handovers = append(handovers, d)
		}
		if len(handovers) != 2 || handovers[0] != 90 || handovers[1] != 180 {
			t.Fatalf("handovers on days %v, want [90 180]", handovers)
		}
		for ev, n := range map[string]int{"apikey.rotate": 2, "apikey.collect": 2, "apikey.expire": 2, "apikey.use_after_expiry": 2} {
			if got := f.audit.count(ev); got != n {
				t.Errorf("%s: %d events, want %d", ev, got, n)
			}
		}
	})
}

func TestUncollectedSuccessorIsErasedAtExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := setup(t, b)
		ctx := context.Background()
		tok, k := f.create(t, func(r *CreateRequest) { r.RotationPeriod, r.GracePeriod = 2*time.Hour, time.Hour })
		f.clock.Advance(2 * time.Hour)
		if err := f.svc.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := f.store.APIKeyByID(ctx, k.ID)
		if got.Status != storage.APIKeyRotating || len(got.SealedSuccessorSecret) == 0 {
			t.Fatalf("not rotated: %q", got.Status)
		}
		f.clock.Advance(time.Hour)
		if err := f.svc.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ = f.store.APIKeyByID(ctx, k.ID)
		if got.Status != storage.APIKeyExpired || got.SealedSuccessorSecret != nil {
			t.Fatalf("after grace: status %q, sealed %d bytes", got.Status, len(got.SealedSuccessorSecret))
		}
		if _, _, err := f.svc.CollectOrRotate(ctx, tok); !errors.Is(err, ErrExpired) {
			t.Fatalf("collect after grace: %v", err)
		}
	})
}

func TestRevokeErasesSealedSuccessor(t *testing.T) {
	f := setup(t, backends[0])
	ctx := context.Background()
	tok, k := f.create(t, func(r *CreateRequest) { r.RotationPeriod, r.GracePeriod = 2*time.Hour, time.Hour })
	f.clock.Advance(2 * time.Hour)
	if err := f.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Revoke(ctx, k.ID, "admin:alice"); err != nil {
		t.Fatal(err)
	}
	got, _ := f.store.APIKeyByID(ctx, k.ID)
	if got.SealedSuccessorSecret != nil || got.Status != storage.APIKeyRevoked {
		t.Fatal("revoked key keeps its sealed successor")
	}
	if _, _, err := f.svc.CollectOrRotate(ctx, tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("collect with revoked key: %v", err)
	}
}

// TestConcurrentCollectAndTick: the successor's secret is handed out once
// however many callers race, and two replicas ticking at once rotate a due
// key once.
func TestConcurrentCollectAndTick(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		c := newClock()
		stores := b.open(t, c.Now, 2)
		box := newBox(t)
		r1 := newService(t, stores[0], c, box, fastParams)
		r2 := newService(t, stores[1], c, box, fastParams)
		ctx := context.Background()
		tok, k := r1.create(t, func(r *CreateRequest) { r.RotationPeriod, r.GracePeriod = 2*time.Hour, time.Hour })
		c.Advance(2 * time.Hour)
		errs := make(chan error, 2)
		for _, r := range []*fixture{r1, r2} {
			go func() { errs <- r.svc.Tick(ctx) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		all, _ := r1.svc.List(ctx, storage.ListOptions{})
		if len(all) != 2 {
			t.Fatalf("%d keys after concurrent ticks, want 2", len(all))
		}
		const callers = 8
		type result struct {
			tok string
			err error
		}
		results := make(chan result, callers)
		for i := range callers {
			r := []*fixture{r1, r2}[i%2]
			go func() {
				nt, _, err := r.svc.CollectOrRotate(ctx, tok)
				results <- result{nt, err}
			}()
		}
		won := 0
		for range callers {
			res := <-results
			switch {
			case res.err == nil:
				won++
				if _, _, err := r2.svc.Verify(ctx, res.tok); err != nil {
					t.Fatalf("collected token: %v", err)
				}
			case errors.Is(res.err, ErrNoPendingSuccessor), errors.Is(res.err, ErrConflict):
			default:
				t.Fatalf("collect: %v", res.err)
			}
		}
		if won != 1 {
			t.Fatalf("successor handed out %d times", won)
		}
		if got, _ := stores[0].APIKeyByID(ctx, k.ID); got.SealedSuccessorSecret != nil {
			t.Fatal("sealed secret left after collection")
		}
	})
}
