package keys_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/storage"
)

// history tracks what a simulation observed of each key.
type history struct {
	states    []storage.KeyState
	bootstrap bool
	gone      time.Time // when it left the store
	lastSeen  *storage.SigningKey
}

// checker asserts the ring's invariants after every simulated step.
type checker struct {
	t     *testing.T
	e     *env
	r     *keys.Ring
	cfg   keys.Config
	algs  []string
	seen  map[string]*history
	tick  time.Duration
	steps int
	// the parsed JWKS, re-parsed only when the ETag changes
	etag      string
	published map[string]jose.JSONWebKey
}

func newChecker(t *testing.T, e *env, r *keys.Ring, cfg keys.Config, tick time.Duration) *checker {
	return &checker{t: t, e: e, r: r, cfg: cfg, algs: cfg.Algorithms, seen: map[string]*history{}, tick: tick}
}

var validNext = map[storage.KeyState][]storage.KeyState{
	storage.KeyNext:    {storage.KeyActive, storage.KeyRevoked},
	storage.KeyActive:  {storage.KeyRetired, storage.KeyRevoked},
	storage.KeyRetired: {storage.KeyRevoked},
}

func (c *checker) check() {
	t := c.t
	t.Helper()
	c.steps++
	now := c.e.clock.Now()
	rows := c.e.rows(t)
	body, etag := c.r.JWKS()
	if etag != c.etag {
		c.published, c.etag = jwksKids(t, body), etag
	}
	published := c.published
	present := map[string]bool{}
	for _, k := range rows {
		present[k.KID] = true
		h := c.seen[k.KID]
		if h == nil {
			h = &history{bootstrap: k.State == storage.KeyActive}
			c.seen[k.KID] = h
		}
		if n := len(h.states); n == 0 || h.states[n-1] != k.State {
			if n > 0 && !slices.Contains(validNext[h.states[n-1]], k.State) {
				t.Fatalf("%s: illegal transition %s → %s at %s", k.KID, h.states[n-1], k.State, now)
			}
			h.states = append(h.states, k.State)
		}
		h.lastSeen = k
		// Timestamps in order and never in the future.
		for _, ts := range []time.Time{k.CreatedAt, k.ActivatedAt, k.RetiredAt, k.RevokedAt} {
			if ts.After(now) {
				t.Fatalf("%s: timestamp %s after now %s", k.KID, ts, now)
			}
		}
		if !k.ActivatedAt.IsZero() && k.ActivatedAt.Before(k.CreatedAt) {
			t.Fatalf("%s: activated before created", k.KID)
		}
		if !k.RetiredAt.IsZero() && (k.ActivatedAt.IsZero() || k.RetiredAt.Before(k.ActivatedAt)) {
			t.Fatalf("%s: retired %s without/before activation %s", k.KID, k.RetiredAt, k.ActivatedAt)
		}
		switch k.State {
		case storage.KeyActive:
			if k.ActivatedAt.IsZero() {
				t.Fatalf("%s: active without ActivatedAt", k.KID)
			}
		case storage.KeyRetired:
			if k.RetiredAt.IsZero() {
				t.Fatalf("%s: retired without RetiredAt", k.KID)
			}
		case storage.KeyRevoked:
			if k.RevokedAt.IsZero() {
				t.Fatalf("%s: revoked without RevokedAt", k.KID)
			}
			if _, ok := published[k.KID]; ok {
				t.Fatalf("%s: revoked key in JWKS", k.KID)
			}
			if _, ok := c.r.VerificationKey(k.KID); ok {
				t.Fatalf("%s: revoked key still verifies", k.KID)
			}
		}
		if k.State != storage.KeyRevoked {
			if _, ok := published[k.KID]; !ok {
				t.Fatalf("%s %s key missing from JWKS at %s", k.State, k.KID, now)
			}
		}
	}
	for _, alg := range c.algs {
		active := inState(rows, alg, storage.KeyActive)
		if len(active) != 1 {
			t.Fatalf("%s: %d active keys at %s", alg, len(active), now)
		}
		sk, err := c.r.SigningKey(alg)
		if err != nil || sk.KeyID != active[0].KID {
			t.Fatalf("%s: ring signs with %v (%v), store says %s", alg, sk, err, active[0].KID)
		}
		if len(inState(rows, alg, storage.KeyNext)) != 1 {
			t.Fatalf("%s: %d next keys at %s", alg, len(inState(rows, alg, storage.KeyNext)), now)
		}
	}
	for kid, h := range c.seen {
		if present[kid] || !h.gone.IsZero() {
			continue
		}
		h.gone = now
		k := h.lastSeen
		switch k.State {
		case storage.KeyRetired:
			// Published for at least Retention, and removed within a tick.
			if now.Before(k.RetiredAt.Add(c.cfg.Retention)) || now.After(k.RetiredAt.Add(c.cfg.Retention+c.tick)) {
				t.Fatalf("%s: retired %s, deleted %s; retention %s", kid, k.RetiredAt, now, c.cfg.Retention)
			}
		case storage.KeyRevoked:
			if now.Before(k.RevokedAt.Add(c.cfg.Retention)) {
				t.Fatalf("%s: revoked row deleted early", kid)
			}
		default:
			t.Fatalf("%s: %s key disappeared", kid, k.State)
		}
	}
}

func TestScheduleOverYears(t *testing.T) {
	e := newEnv()
	ctx := context.Background()
	cfg := e.config(t, keys.ES256, keys.EdDSA)
	cfg.RotationPeriod = keys.DefaultRotationPeriod
	cfg.LeadTime = keys.DefaultLeadTime
	cfg.Retention = keys.DefaultRetention
	r := e.ring(t, cfg)
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	const step = time.Hour
	c := newChecker(t, e, r, cfg, step)
	c.check()
	start := e.clock.Now()
	const years = 3
	hours := years * 365 * 24
	for i := 1; i <= hours; i++ {
		e.clock.Add(step)
		if err := r.Tick(ctx); err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
		switch i {
		case 800: // revoke a retired key
			rows := e.rows(t)
			if ret := inState(rows, keys.ES256, storage.KeyRetired); len(ret) > 0 {
				if err := r.Revoke(ctx, ret[0].KID, "admin"); err != nil {
					t.Fatal(err)
				}
			} else {
				t.Fatal("no retired key at hour 800")
			}
		case 5000: // revoke the active key
			if err := r.Revoke(ctx, inState(e.rows(t), keys.EdDSA, storage.KeyActive)[0].KID, "admin"); err != nil {
				t.Fatal(err)
			}
		case 9000: // revoke a next key
			if err := r.Revoke(ctx, inState(e.rows(t), keys.ES256, storage.KeyNext)[0].KID, "admin"); err != nil {
				t.Fatal(err)
			}
		case 15000: // emergency rotation
			if err := r.Rotate(ctx, keys.ES256, "admin"); err != nil {
				t.Fatal(err)
			}
		}
		c.check()
	}

	// Every key went through a prefix of next → active → retired (→ revoked),
	// and scheduled activations happened on time and after the lead time.
	activations := map[string][]time.Time{}
	for kid, h := range c.seen {
		k := h.lastSeen
		if !h.bootstrap && h.states[0] != storage.KeyNext {
			t.Errorf("%s: started %s", kid, h.states[0])
		}
		if !k.ActivatedAt.IsZero() {
			activations[k.Algorithm] = append(activations[k.Algorithm], k.ActivatedAt)
			if !h.bootstrap && k.ActivatedAt.Before(k.CreatedAt.Add(cfg.LeadTime)) {
				// Only an emergency Rotate or a Revoke may skip the lead time,
				// and in this run those always promoted an old next key.
				t.Errorf("%s: activated %s, only %s after creation", kid, k.ActivatedAt, k.ActivatedAt.Sub(k.CreatedAt))
			}
		}
	}
	for _, alg := range cfg.Algorithms {
		acts := activations[alg]
		slices.SortFunc(acts, time.Time.Compare)
		want := int(e.clock.Now().Sub(start)/keys.DefaultRotationPeriod) + 1
		if len(acts) < want || len(acts) > want+2 {
			t.Errorf("%s: %d activations in %d years, want about %d", alg, len(acts), years, want)
		}
		for i := 1; i < len(acts); i++ {
			if gap := acts[i].Sub(acts[i-1]); gap > keys.DefaultRotationPeriod+step {
				t.Errorf("%s: %s between activations", alg, gap)
			}
		}
	}
	if got := e.audit.count("signing_key.revoked", ""); got != 3 {
		t.Errorf("%d revocation audit events, want 3", got)
	}
	if e.audit.count("signing_key.retired", "") == 0 || e.audit.count("signing_key.deleted", "") == 0 {
		t.Error("no retired/deleted audit events")
	}
	t.Logf("%d steps checked, %d keys seen", c.steps, len(c.seen))
}

func TestScheduleRS256(t *testing.T) {
	e := newEnv()
	ctx := context.Background()
	cfg := e.config(t, keys.RS256)
	cfg.RotationPeriod = 24 * time.Hour
	cfg.LeadTime = 12 * time.Hour
	cfg.Retention = 6 * time.Hour
	r := e.ring(t, cfg)
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	c := newChecker(t, e, r, cfg, time.Hour)
	c.check()
	for range 2*24 + 1 {
		e.clock.Add(time.Hour)
		if err := r.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		c.check()
	}
	if n := e.audit.count("signing_key.active", keys.RS256); n != 3 {
		t.Errorf("%d RS256 activations in 2 days (incl. bootstrap), want 3", n)
	}
}

func TestRotate(t *testing.T) {
	e := newEnv()
	ctx := context.Background()
	r := e.ring(t, e.config(t, keys.ES256))
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	rows := e.rows(t)
	oldActive := inState(rows, keys.ES256, storage.KeyActive)[0]
	oldNext := inState(rows, keys.ES256, storage.KeyNext)[0]
	e.clock.Add(time.Hour)

	// With a published next key, it takes over at once.
	if err := r.Rotate(ctx, keys.ES256, "alice"); err != nil {
		t.Fatal(err)
	}
	rows = e.rows(t)
	active := inState(rows, keys.ES256, storage.KeyActive)
	if len(active) != 1 || active[0].KID != oldNext.KID {
		t.Fatalf("active after Rotate = %v, want former next %s", active, oldNext.KID)
	}
	if sk, _ := r.SigningKey(keys.ES256); sk == nil || sk.KeyID != oldNext.KID {
		t.Fatal("ring does not sign with the promoted key")
	}
	retired := inState(rows, keys.ES256, storage.KeyRetired)
	if len(retired) != 1 || retired[0].KID != oldActive.KID || !retired[0].RetiredAt.Equal(e.clock.Now()) {
		t.Fatalf("retired = %v", retired)
	}
	next := inState(rows, keys.ES256, storage.KeyNext)
	if len(next) != 1 || !next[0].ActivateAt.Equal(e.clock.Now().Add(keys.DefaultRotationPeriod)) {
		t.Fatalf("next after Rotate = %v", next)
	}

	// Without a next key, a fresh key signs at once.
	if err := e.store.DeleteSigningKey(ctx, next[0].KID); err != nil {
		t.Fatal(err)
	}
	if err := r.Rotate(ctx, keys.ES256, "alice"); err != nil {
		t.Fatal(err)
	}
	rows = e.rows(t)
	active = inState(rows, keys.ES256, storage.KeyActive)
	if len(active) != 1 || active[0].KID == oldNext.KID || active[0].KID == next[0].KID {
		t.Fatalf("active after second Rotate = %v", active)
	}
	if len(inState(rows, keys.ES256, storage.KeyNext)) != 1 || len(inState(rows, keys.ES256, storage.KeyRetired)) != 2 {
		t.Fatal("second Rotate did not retire the old key and create a next key")
	}
	if err := r.Rotate(ctx, "HS256", "alice"); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
		t.Fatalf("Rotate(HS256) = %v", err)
	}
	e.audit.mu.Lock()
	defer e.audit.mu.Unlock()
	for _, ev := range e.audit.events {
		if ev.Time.After(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) && ev.Actor != "alice" {
			t.Errorf("event %s by %q, want alice", ev.Event, ev.Actor)
		}
	}
}

func TestRevoke(t *testing.T) {
	cases := []struct {
		name  string
		state storage.KeyState
	}{
		{"case=active", storage.KeyActive},
		{"case=next", storage.KeyNext},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv()
			ctx := context.Background()
			r := e.ring(t, e.config(t, keys.ES256))
			if err := r.Bootstrap(ctx); err != nil {
				t.Fatal(err)
			}
			rows := e.rows(t)
			victim := inState(rows, keys.ES256, tc.state)[0]
			oldNext := inState(rows, keys.ES256, storage.KeyNext)[0]
			e.clock.Add(time.Minute)
			if err := r.Revoke(ctx, victim.KID, "bob"); err != nil {
				t.Fatal(err)
			}
			if _, ok := r.VerificationKey(victim.KID); ok {
				t.Error("revoked key still verifies")
			}
			body, _ := r.JWKS()
			if _, ok := jwksKids(t, body)[victim.KID]; ok {
				t.Error("revoked key in JWKS")
			}
			rows = e.rows(t)
			active := inState(rows, keys.ES256, storage.KeyActive)
			next := inState(rows, keys.ES256, storage.KeyNext)
			if len(active) != 1 || len(next) != 1 {
				t.Fatalf("%d active, %d next after revoke", len(active), len(next))
			}
			if tc.state == storage.KeyActive && active[0].KID != oldNext.KID {
				t.Error("next key was not promoted")
			}
			if sk, err := r.SigningKey(keys.ES256); err != nil || sk.KeyID != active[0].KID {
				t.Errorf("signing key = %v, %v", sk, err)
			}
			if err := r.Revoke(ctx, victim.KID, "bob"); !errors.Is(err, keys.ErrUnknownKey) {
				t.Errorf("second Revoke = %v, want ErrUnknownKey", err)
			}
			if e.audit.count("signing_key.revoked", keys.ES256) != 1 {
				t.Error("no revocation audit event")
			}
		})
	}
}

func TestReplicasAgree(t *testing.T) {
	e := newEnv()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	algs := []string{keys.ES256, keys.EdDSA}
	rings := make([]*keys.Ring, 3)
	for i := range rings {
		cfg := e.config(t, algs...)
		cfg.TickInterval = time.Hour // Run must not tick on its own here
		cfg.ReloadInterval = time.Hour
		rings[i] = e.ring(t, cfg)
	}
	all := func(fn func(*keys.Ring) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, len(rings))
		start := make(chan struct{})
		for i, r := range rings {
			wg.Go(func() {
				<-start
				errs[i] = fn(r)
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	all(func(r *keys.Ring) error { return r.Bootstrap(ctx) })
	for _, alg := range algs {
		if n := e.audit.count("signing_key.active", alg); n != 1 {
			t.Errorf("%s: %d active keys created by three Bootstraps", alg, n)
		}
		if n := e.audit.count("signing_key.next", alg); n != 1 {
			t.Errorf("%s: %d next keys created by three Bootstraps", alg, n)
		}
	}
	_, etag0 := rings[0].JWKS()
	for i, r := range rings {
		if _, etag := r.JWKS(); etag != etag0 {
			t.Errorf("replica %d serves a different JWKS after Bootstrap", i)
		}
	}

	// Replicas 1 and 2 follow changes through notifications only.
	for _, r := range rings[1:] {
		go r.Run(ctx)
	}
	time.Sleep(50 * time.Millisecond) // let Run subscribe before the change
	e.clock.Add(keys.DefaultRotationPeriod)
	all(func(r *keys.Ring) error { return r.Tick(ctx) })
	for _, alg := range algs {
		// Bootstrap's active, plus exactly one activation.
		if n := e.audit.count("signing_key.active", alg); n != 2 {
			t.Errorf("%s: %d activations after three simultaneous Ticks, want 1 more", alg, n-1)
		}
		if n := e.audit.count("signing_key.next", alg); n != 2 {
			t.Errorf("%s: %d next keys created, want 1 more", alg, n-1)
		}
		if n := e.audit.count("signing_key.retired", alg); n != 1 {
			t.Errorf("%s: %d retirements, want 1", alg, n)
		}
	}
	rows := e.rows(t)
	if len(rows) != 6 {
		t.Errorf("%d keys in the store, want 6", len(rows))
	}
	// Whichever replica ticked, replicas 1 and 2 converge through Notify
	// alone (no Load here); replica 0 is not running, so it loads by hand.
	deadline := time.Now().Add(5 * time.Second)
	for {
		converged := true
		for _, r := range rings[1:] {
			for _, alg := range algs {
				sk, err := r.SigningKey(alg)
				converged = converged && err == nil && sk.KeyID == inState(rows, alg, storage.KeyActive)[0].KID
			}
		}
		if converged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replicas did not converge through notifications")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := rings[0].Load(ctx); err != nil {
		t.Fatal(err)
	}
	_, etag0 = rings[0].JWKS()
	for i, r := range rings {
		if _, etag := r.JWKS(); etag != etag0 {
			t.Errorf("replica %d serves a different JWKS after Tick", i)
		}
	}
	for _, alg := range algs {
		active := inState(rows, alg, storage.KeyActive)[0]
		for i, r := range rings {
			if sk, err := r.SigningKey(alg); err != nil || sk.KeyID != active.KID {
				t.Errorf("replica %d signs %s with %v (%v), want %s", i, alg, sk, err, active.KID)
			}
		}
	}
}

func TestRunTicksAndStops(t *testing.T) {
	e := newEnv()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := e.config(t, keys.ES256)
	cfg.TickInterval = 5 * time.Millisecond
	cfg.ReloadInterval = 5 * time.Millisecond
	r := e.ring(t, cfg)
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := r.SigningKey(keys.ES256)
	e.clock.Add(keys.DefaultRotationPeriod)
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if sk, err := r.SigningKey(keys.ES256); err == nil && sk.KeyID != first.KeyID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not rotate the due key")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if n := e.audit.count("signing_key.active", keys.ES256); n != 2 {
		t.Errorf("%d activations, want bootstrap + 1", n)
	}
}
