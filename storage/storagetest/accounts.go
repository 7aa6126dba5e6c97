package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// chainKey is an active key of owner with no links.
func chainKey(id, ownerType, ownerID string) *storage.APIKey {
	k := newAPIKey(id, id)
	k.OwnerType, k.OwnerID = ownerType, ownerID
	k.ReplacesID, k.SealedSuccessorSecret = "", nil
	return k
}

// rotateKey rotates the stored key id into a new successor succID the way
// keys/apikeys does; it returns the store's error.
func rotateKey(t *testing.T, s storage.Store, id, succID string) error {
	t.Helper()
	old, err := s.APIKeyByID(ctx(t), id)
	if err != nil {
		return err
	}
	if old.Status != storage.APIKeyActive || old.ReplacedByID != "" {
		return storage.ErrPreconditionFailed
	}
	succ := chainKey(succID, old.OwnerType, old.OwnerID)
	succ.ReplacesID = old.ID
	v := old.Version
	old.Status, old.ReplacedByID, old.SealedSuccessorSecret = storage.APIKeyRotating, succID, []byte("sealed")
	return s.RotateAPIKey(ctx(t), old, v, succ)
}

// liveKeys returns the ids of the owner's keys that are not revoked.
func liveKeys(t *testing.T, s storage.Store, ownerType, ownerID string) []string {
	t.Helper()
	all, err := s.ListAPIKeys(ctx(t), storage.ListOptions{Limit: 1000})
	must(t, err)
	var out []string
	for _, k := range all {
		if k.OwnerType == ownerType && k.OwnerID == ownerID && k.Status != storage.APIKeyRevoked {
			out = append(out, k.ID)
		}
	}
	return out
}

func ids(ks []*storage.APIKey) []string {
	out := make([]string, 0, len(ks))
	for _, k := range ks {
		out = append(out, k.ID)
	}
	slices.Sort(out)
	return out
}

func activeCount(t *testing.T, s storage.Store, alg string) int {
	t.Helper()
	list, err := s.ListSigningKeys(ctx(t))
	must(t, err)
	n := 0
	for _, k := range list {
		if k.Algorithm == alg && k.State == storage.KeyActive {
			n++
		}
	}
	return n
}

var accountTests = []test{
	{"api-key/rotate-links-both-keys", func(t *testing.T, s storage.Store) {
		must(t, s.CreateAPIKey(ctx(t), chainKey("k1", "client", "app")))
		must(t, rotateKey(t, s, "k1", "k2"))
		old, err := s.APIKeyByID(ctx(t), "k1")
		must(t, err)
		succ, err := s.APIKeyByID(ctx(t), "k2")
		must(t, err)
		if old.Status != storage.APIKeyRotating || old.ReplacedByID != "k2" || old.Version != 2 ||
			succ.ReplacesID != "k1" || succ.Version != 1 {
			t.Fatalf("after rotation: old %+v succ %+v", old, succ)
		}
		// A stale version changes nothing: no second successor appears.
		stale := chainKey("k1", "client", "app")
		wantErr(t, s.RotateAPIKey(ctx(t), stale, 1, chainKey("k3", "client", "app")), storage.ErrPreconditionFailed)
		_, err = s.APIKeyByID(ctx(t), "k3")
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"api-key/revoke-chain-both-directions", func(t *testing.T, s storage.Store) {
		for _, tc := range []struct {
			name, revoke string
		}{{"case=revoke-first", "a1"}, {"case=revoke-middle", "a2"}, {"case=revoke-last", "a3"}} {
			t.Run(tc.name, func(t *testing.T) {
				p := tc.name + "-"
				must(t, s.CreateAPIKey(ctx(t), chainKey(p+"a1", "client", p)))
				must(t, rotateKey(t, s, p+"a1", p+"a2"))
				must(t, rotateKey(t, s, p+"a2", p+"a3"))
				must(t, s.CreateAPIKey(ctx(t), chainKey(p+"other", "client", p)))
				at := now()
				got, err := s.RevokeAPIKeyChain(ctx(t), p+tc.revoke, at)
				must(t, err)
				wantEqual(t, "revoked", []string{p + "a1", p + "a2", p + "a3"}, ids(got))
				for _, k := range got {
					if k.Status != storage.APIKeyRevoked || !k.RevokedAt.Equal(at) || k.SealedSuccessorSecret != nil || !k.RotateAt.IsZero() {
						t.Fatalf("revoked key %s: %+v", k.ID, k)
					}
				}
				wantEqual(t, "unrelated key still live", []string{p + "other"}, liveKeys(t, s, "client", p))
				// Again: nothing left to change.
				got, err = s.RevokeAPIKeyChain(ctx(t), p+"a1", at)
				must(t, err)
				if len(got) != 0 {
					t.Fatalf("second revocation changed %v", ids(got))
				}
				// A revoked key cannot be rotated into a new successor.
				if err := rotateKey(t, s, p+"a3", p+"a4"); err == nil {
					t.Fatal("rotated a revoked key")
				}
			})
		}
		_, err := s.RevokeAPIKeyChain(ctx(t), "nope", now())
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"api-key/revoke-by-owner", func(t *testing.T, s storage.Store) {
		must(t, s.CreateAPIKey(ctx(t), chainKey("o1", "client", "app")))
		must(t, s.CreateAPIKey(ctx(t), chainKey("o2", "client", "app")))
		must(t, rotateKey(t, s, "o2", "o3"))
		must(t, s.CreateAPIKey(ctx(t), chainKey("u1", "user", "app"))) // same id, other owner type
		got, err := s.RevokeAPIKeysByOwner(ctx(t), "client", "app", now())
		must(t, err)
		wantEqual(t, "revoked", []string{"o1", "o2", "o3"}, ids(got))
		wantEqual(t, "user's key untouched", []string{"u1"}, liveKeys(t, s, "user", "app"))
		got, err = s.RevokeAPIKeysByOwner(ctx(t), "client", "app", now())
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("second containment changed %v", ids(got))
		}
	}},
	{"api-key/race-chain-revoke-vs-rotation", func(t *testing.T, s storage.Store) {
		for round := range 4 {
			owner := fmt.Sprintf("race-%d", round)
			must(t, s.CreateAPIKey(ctx(t), chainKey(owner+"-k", "service", owner)))
			errs := Together(racers, func(i int) error {
				if i == racers/2 {
					_, err := s.RevokeAPIKeyChain(ctx(t), owner+"-k", now())
					return err
				}
				// Rotate whatever the chain's newest key is.
				cur := owner + "-k"
				for {
					k, err := s.APIKeyByID(ctx(t), cur)
					if err != nil || k.ReplacedByID == "" {
						break
					}
					cur = k.ReplacedByID
				}
				err := rotateKey(t, s, cur, fmt.Sprintf("%s-s%d", owner, i))
				if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrConflict) {
					return nil // lost to another rotation or the revocation
				}
				return err
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d caller %d: %v", round, i, err)
				}
			}
			if live := liveKeys(t, s, "service", owner); len(live) != 0 {
				t.Fatalf("round %d: keys of a revoked chain survived: %v", round, live)
			}
		}
	}},
	{"api-key/race-owner-containment-vs-rotation", func(t *testing.T, s storage.Store) {
		for round := range 4 {
			owner := fmt.Sprintf("app-%d", round)
			for j := range 3 {
				must(t, s.CreateAPIKey(ctx(t), chainKey(fmt.Sprintf("%s-k%d", owner, j), "client", owner)))
			}
			errs := Together(racers, func(i int) error {
				if i == 0 {
					_, err := s.RevokeAPIKeysByOwner(ctx(t), "client", owner, now())
					return err
				}
				err := rotateKey(t, s, fmt.Sprintf("%s-k%d", owner, i%3), fmt.Sprintf("%s-s%d", owner, i))
				if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrConflict) {
					return nil
				}
				return err
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d caller %d: %v", round, i, err)
				}
			}
			if live := liveKeys(t, s, "client", owner); len(live) != 0 {
				t.Fatalf("round %d: keys of a contained owner survived: %v", round, live)
			}
		}
	}},
	{"signing-key/revoke-promotes-in-one-step", func(t *testing.T, s storage.Store) {
		t0 := now()
		must(t, s.CreateSigningKey(ctx(t), newSigningKey("a", storage.KeyActive, t0)))
		must(t, s.CreateSigningKey(ctx(t), newSigningKey("n", storage.KeyNext, t0.Add(time.Second))))
		at := t0.Add(time.Minute)
		// A replacement that is not a next key: nothing changes at all.
		bad := newSigningKey("a", storage.KeyNext, t0)
		wantErr(t, s.RevokeSigningKey(ctx(t), "a", storage.KeyActive, at, bad), storage.ErrPreconditionFailed)
		if ks := signingKeys(t, s); ks["a"].State != storage.KeyActive || ks["n"].State != storage.KeyNext {
			t.Fatalf("failed revocation changed keys: a=%s n=%s", ks["a"].State, ks["n"].State)
		}
		must(t, s.RevokeSigningKey(ctx(t), "a", storage.KeyActive, at, newSigningKey("n", storage.KeyNext, t0)))
		ks := signingKeys(t, s)
		if ks["a"].State != storage.KeyRevoked || !ks["a"].RevokedAt.Equal(at) ||
			ks["n"].State != storage.KeyActive || !ks["n"].ActivatedAt.Equal(at) {
			t.Fatalf("after revoke: a=%+v n=%+v", ks["a"], ks["n"])
		}
		wantErr(t, s.RevokeSigningKey(ctx(t), "a", storage.KeyActive, at, nil), storage.ErrPreconditionFailed)
		// With no next key, a new key is inserted as active.
		fresh := newSigningKey("f", storage.KeyActive, at)
		fresh.ActivatedAt = at
		must(t, s.RevokeSigningKey(ctx(t), "n", storage.KeyActive, at, fresh))
		ks = signingKeys(t, s)
		if ks["n"].State != storage.KeyRevoked || ks["f"].State != storage.KeyActive {
			t.Fatalf("after second revoke: n=%s f=%+v", ks["n"].State, ks["f"])
		}
		_, err := s.ListSigningKeys(ctx(t))
		must(t, err)
		wantErr(t, s.RevokeSigningKey(ctx(t), "nope", storage.KeyActive, at, nil), storage.ErrNotFound)
	}},
	{"signing-key/race-revoke-never-zero-active", func(t *testing.T, s storage.Store) {
		t0 := now()
		must(t, s.CreateSigningKey(ctx(t), newSigningKey("r0", storage.KeyActive, t0)))
		var (
			stop   atomic.Bool
			zeroes atomic.Int64
			wg     sync.WaitGroup
		)
		wg.Add(1)
		go func() { // the observer: every snapshot must hold an active key
			defer wg.Done()
			for !stop.Load() {
				list, err := s.ListSigningKeys(ctx(t))
				n := 0
				for _, k := range list {
					if k.State == storage.KeyActive {
						n++
					}
				}
				if err != nil || n != 1 {
					zeroes.Add(1)
				}
			}
		}()
		for round := range 5 {
			cur := fmt.Sprintf("r%d", round)
			next := fmt.Sprintf("r%d", round+1)
			must(t, s.CreateSigningKey(ctx(t), newSigningKey(next, storage.KeyNext, t0.Add(time.Duration(round+1)*time.Second))))
			errs := Together(racers, func(int) error {
				return s.RevokeSigningKey(ctx(t), cur, storage.KeyActive, now(), newSigningKey(next, storage.KeyNext, t0))
			})
			if n := Count(errs, func(err error) bool { return err == nil }); n != 1 {
				t.Fatalf("round %d: %d revocations succeeded, want 1 (%v)", round, n, errs)
			}
			for _, err := range errs {
				if err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if n := activeCount(t, s, "ES256"); n != 1 {
				t.Fatalf("round %d: %d active keys after the race", round, n)
			}
		}
		stop.Store(true)
		wg.Wait()
		if n := zeroes.Load(); n != 0 {
			t.Fatalf("an observer saw %d snapshots without exactly one active key", n)
		}
	}},
	{"consent/grant-merges", func(t *testing.T, s storage.Store) {
		c := &storage.Consent{Subject: "u", ClientID: "app", Scopes: []string{"openid", "profile"}}
		must(t, s.GrantConsent(ctx(t), c))
		c2 := &storage.Consent{Subject: "u", ClientID: "app", Scopes: []string{"email", "openid"}}
		must(t, s.GrantConsent(ctx(t), c2))
		wantEqual(t, "merged scopes written back", []string{"email", "openid", "profile"}, c2.Scopes)
		got, err := s.GetConsent(ctx(t), "u", "app")
		must(t, err)
		wantEqual(t, "stored scopes", []string{"email", "openid", "profile"}, got.Scopes)
		must(t, s.RevokeConsent(ctx(t), "u", "app"))
		must(t, s.GrantConsent(ctx(t), &storage.Consent{Subject: "u", ClientID: "app", Scopes: []string{"openid"}}))
		got, err = s.GetConsent(ctx(t), "u", "app")
		must(t, err)
		wantEqual(t, "after revoke only the new grant", []string{"openid"}, got.Scopes)
	}},
	{"consent/race-revoke-vs-grant-never-revives", func(t *testing.T, s storage.Store) {
		for round := range 5 {
			client := fmt.Sprintf("app-%d", round)
			must(t, s.GrantConsent(ctx(t), &storage.Consent{Subject: "u", ClientID: client, Scopes: []string{"old"}}))
			errs := Together(racers, func(i int) error {
				if i == racers/2 {
					return s.RevokeConsent(ctx(t), "u", client)
				}
				return s.GrantConsent(ctx(t), &storage.Consent{Subject: "u", ClientID: client, Scopes: []string{fmt.Sprintf("new-%d", i)}})
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d caller %d: %v", round, i, err)
				}
			}
			got, err := s.GetConsent(ctx(t), "u", client)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			must(t, err)
			if slices.Contains(got.Scopes, "old") {
				t.Fatalf("round %d: revoked scope revived: %v", round, got.Scopes)
			}
		}
	}},
}
