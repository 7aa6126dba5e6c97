package keys_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/storage"
)

// A next key sealed under a secret this replica does not have (a replica
// misconfigured with another secret created it) must never become the
// active key: every token request would fail. The scheduler keeps the
// working key and counts the refusal.
func TestTickNeverActivatesUnopenableKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	cfg := e.config(t, keys.ES256)
	good := e.ring(t, cfg)
	if err := good.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	active := inState(e.rows(t), keys.ES256, storage.KeyActive)[0]

	// The foreign key comes from a ring with secret B on another store,
	// copied in as the soonest next key.
	other := newEnv()
	other.clock = e.clock
	ocfg := other.config(t, keys.ES256)
	ocfg.Sealer = newBox(t, secretB)
	if err := other.ring(t, ocfg).Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	foreign := *inState(other.rows(t), keys.ES256, storage.KeyNext)[0]
	foreign.ActivateAt = e.clock.Now().Add(time.Hour)
	if err := e.store.CreateSigningKey(ctx, &foreign); err != nil {
		t.Fatal(err)
	}

	e.clock.Add(keys.DefaultRotationPeriod + time.Hour)
	_ = good.Tick(ctx) // reports the refusal
	if now := inState(e.rows(t), keys.ES256, storage.KeyActive); len(now) != 1 || now[0].KID != active.KID {
		t.Fatalf("active keys after Tick: %+v, want still %s", now, active.KID)
	}
	if h := good.Health(); h.BlockedActivations != 1 || !h.Usable[keys.ES256] {
		t.Fatalf("health %+v", h)
	}
	if err := good.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if _, err := good.SigningKey(keys.ES256); err != nil {
		t.Fatalf("signing stopped: %v", err)
	}
}

// Rotate and Reseal with a secret that does not open the stored keys
// write nothing; Reseal skips revoked keys; Advance waits for the lead
// time.
func TestWrongSecretAndLeadTime(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	cfg := e.config(t, keys.ES256, keys.EdDSA)
	a := e.ring(t, cfg)
	if err := a.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Advance(ctx, keys.ES256, "test"); !errors.Is(err, keys.ErrTooEarly) {
		t.Fatalf("Advance right after bootstrap: %v, want ErrTooEarly", err)
	}
	before := e.rows(t)

	wrong := cfg
	wrong.Sealer = newBox(t, secretB)
	w := e.ring(t, wrong)
	if err := w.Rotate(ctx, keys.ES256, "test"); !errors.Is(err, keys.ErrWrongSecret) {
		t.Fatalf("Rotate with the wrong secret: %v", err)
	}
	if n, err := w.Reseal(ctx); n != 0 || !errors.Is(err, keys.ErrWrongSecret) {
		t.Fatalf("Reseal with the wrong secret: %d, %v", n, err)
	}
	if err := w.CheckSecret(ctx); !errors.Is(err, keys.ErrWrongSecret) {
		t.Fatalf("CheckSecret: %v", err)
	}
	// A replica started with the wrong secret refuses to start, and its
	// scheduler writes nothing, even for an algorithm with no keys yet.
	wrongMore := wrong
	wrongMore.Algorithms = []string{keys.ES256, keys.EdDSA, keys.RS256}
	wm := e.ring(t, wrongMore)
	if err := wm.Bootstrap(ctx); !errors.Is(err, keys.ErrWrongSecret) {
		t.Fatalf("Bootstrap with the wrong secret: %v", err)
	}
	e.clock.Add(keys.DefaultRotationPeriod)
	if err := wm.Tick(ctx); !errors.Is(err, keys.ErrWrongSecret) || wm.Health().BlockedActivations != 1 {
		t.Fatalf("Tick with the wrong secret: %v, health %+v", err, wm.Health())
	}
	e.clock.Add(-keys.DefaultRotationPeriod)
	if after := e.rows(t); !reflect.DeepEqual(before, after) {
		t.Fatal("a refused operation changed the keys")
	}

	e.clock.Add(keys.DefaultLeadTime)
	if err := a.Advance(ctx, keys.ES256, "test"); err != nil {
		t.Fatalf("Advance after the lead time: %v", err)
	}
	// Revoke one key, then reseal under B with A still listed: the revoked
	// key is left alone, every other key moves.
	ed := inState(e.rows(t), keys.EdDSA, storage.KeyNext)[0]
	if err := a.Revoke(ctx, ed.KID, "test"); err != nil {
		t.Fatal(err)
	}
	both := cfg
	both.Sealer = newBox(t, secretB, secretA)
	var live int
	for _, k := range e.rows(t) {
		if k.State != storage.KeyRevoked && len(k.SealedPrivate) > 0 {
			live++
		}
	}
	if n, err := e.ring(t, both).Reseal(ctx); err != nil || n != live {
		t.Fatalf("Reseal = %d, %v; want %d (revoked skipped)", n, err, live)
	}
}
