package main

// The janitor at scale: many expired token rows deleted in bounded batches
// while tokens are being issued. The default run is small so the suite
// stays fast; the documented run (docs/performance.md) passes
// -janitor-rows=1000000. Figures are logged, not asserted.

import (
	"context"
	"flag"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

var janitorRows = flag.Int("janitor-rows", 20000, "expired token rows TestJanitorAtScaleUnderLoad inserts (the documented run uses 1000000)")

// janitorBatch is the batch the serving janitor uses (runJanitor).
const janitorBatch = 1000

// window summarises the token requests that finished in [from, to).
func window(res []loadResult, from, to time.Time) (n int, perSec float64, p50, p99 time.Duration) {
	var lat []time.Duration
	for _, r := range res {
		if r.status == http.StatusOK && !r.done.Before(from) && r.done.Before(to) {
			lat = append(lat, r.latency)
		}
	}
	return len(lat), float64(len(lat)) / to.Sub(from).Seconds(), percentile(lat, 0.5), percentile(lat, 0.99)
}

func TestJanitorAtScaleUnderLoad(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn, func(c *config) { c.RateLimits, c.ClientRateLimits = nil, nil })
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	n := *janitorRows
	const live = 1000
	fill := time.Now()
	// Expired rows spread over the past day, and live ones that must stay.
	if _, err := pool.Exec(ctx, `INSERT INTO token_sessions (kind, key, request_id, client_id, subject, active, requested_at, expires_at, data)
		SELECT 'access', 'expired-' || g, 'req-' || g, 'svc', '', true,
			now() - interval '25 hours', now() - (g % 86400) * interval '1 second' - interval '1 minute', '{}'::jsonb
		FROM generate_series(1, $1::int) g
		UNION ALL
		SELECT 'access', 'live-' || g, 'live-' || g, 'svc', '', true, now(), now() + interval '1 hour', '{}'::jsonb
		FROM generate_series(1, $2::int) g`, n, live); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE token_sessions`); err != nil {
		t.Fatal(err)
	}
	t.Logf("inserted %d expired and %d live rows in %v", n, live, time.Since(fill).Round(time.Millisecond))

	load := startTokenLoad(s.issuer+"/oauth2/token", "svc", e2eSvcSecret, 8)
	defer load.stop()
	// Baseline: 2,000 tokens after a warm-up of 100.
	waitFor(t, "warm-up tokens", func() bool { return load.count(time.Time{}, http.StatusOK) >= 100 })
	baseFrom := time.Now()
	waitFor(t, "baseline tokens", func() bool { return load.count(baseFrom, http.StatusOK) >= 2000 })
	baseTo := time.Now()

	jFrom := time.Now()
	deleted, _, ran, err := janitorOnce(ctx, s.app.store, jFrom, retention{}, janitorBatch, s.app.log)
	jTo := time.Now()
	if err != nil || !ran {
		t.Fatalf("janitor: ran=%v err=%v", ran, err)
	}
	res := load.stop()

	for i, r := range res {
		if r.status != http.StatusOK {
			t.Fatalf("token request %d: status %d (error %q) while the janitor ran", i, r.status, r.errCode)
		}
	}
	var expiredLeft, liveLeft int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE key LIKE 'expired-%'), count(*) FILTER (WHERE key LIKE 'live-%')
		FROM token_sessions`).Scan(&expiredLeft, &liveLeft); err != nil {
		t.Fatal(err)
	}
	if deleted < int64(n) || expiredLeft != 0 || liveLeft != live {
		t.Fatalf("janitor deleted %d (inserted %d expired); %d expired and %d of %d live rows left", deleted, n, expiredLeft, liveLeft, live)
	}
	bn, brate, bp50, bp99 := window(res, baseFrom, baseTo)
	jn, jrate, jp50, jp99 := window(res, jFrom, jTo)
	t.Logf("janitor: %d rows in %v (%.0f rows/s, batches of %d); tokens (c8) before: %d at %.0f/s p50 %v p99 %v; during: %d at %.0f/s p50 %v p99 %v",
		deleted, jTo.Sub(jFrom).Round(time.Millisecond), float64(deleted)/jTo.Sub(jFrom).Seconds(), janitorBatch,
		bn, brate, bp50.Round(100*time.Microsecond), bp99.Round(100*time.Microsecond),
		jn, jrate, jp50.Round(100*time.Microsecond), jp99.Round(100*time.Microsecond))
}
