package loadgen

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestPacerTake(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		rate    float64
		max     int64
		takes   int
		wantOK  int
		wantDue []time.Duration // offsets from start; nil: closed loop (due now)
	}{
		{name: "case=open loop at 4/s is due every 250 ms", rate: 4, takes: 4, wantOK: 4,
			wantDue: []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond}},
		{name: "case=open loop stops at the cap", rate: 1000, max: 2, takes: 4, wantOK: 2,
			wantDue: []time.Duration{0, time.Millisecond}},
		{name: "case=closed loop stops at the cap", max: 3, takes: 5, wantOK: 3},
		{name: "case=closed loop without a cap", takes: 10, wantOK: 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPacer(start, tc.rate, tc.max)
			if p.open() != (tc.rate > 0) {
				t.Fatalf("open() = %v for rate %v", p.open(), tc.rate)
			}
			ok := 0
			for i := range tc.takes {
				before := time.Now()
				due, took := p.take()
				if !took {
					continue
				}
				ok++
				switch {
				case tc.wantDue != nil && !due.Equal(start.Add(tc.wantDue[i])):
					t.Errorf("take %d due at %v, want start+%v", i, due.Sub(start), tc.wantDue[i])
				case tc.wantDue == nil && due.Before(before):
					t.Errorf("closed loop take %d due %v, before it was taken", i, due)
				}
			}
			if ok != tc.wantOK {
				t.Fatalf("%d takes succeeded, want %d", ok, tc.wantOK)
			}
		})
	}
}

// TestOpenLoopChargesTheWaitForAClient: one client, operations due every
// 10 ms, each taking at least 50 ms. The tenth operation was due at 90 ms
// and cannot end before 500 ms, so its latency is at least 410 ms, while
// each send took at least 50 ms. Only lower bounds are asserted: a slower
// machine makes both larger.
func TestOpenLoopChargesTheWaitForAClient(t *testing.T) {
	slow := func(ctx context.Context) (int, error) {
		time.Sleep(50 * time.Millisecond)
		return 1, nil
	}
	ph := runPhase(context.Background(), context.Background(), []op{slow}, newPacer(time.Now(), 100, 10), cutOff, time.Second, nil)
	if ph.done != 10 || ph.failed != 0 {
		t.Fatalf("done %d failed %d, want 10 and 0", ph.done, ph.failed)
	}
	l, svc := summarize(ph.latencies), summarize(ph.service)
	if l.Max < 410 {
		t.Errorf("max latency %v ms: the wait for the busy client was not charged", l.Max)
	}
	if svc.P50 < 50 || len(ph.service) != 10 {
		t.Errorf("service latency %+v over %d samples, want each ≥ 50 ms", svc, len(ph.service))
	}
	if l.Max <= svc.Max {
		t.Errorf("latency max %v ms not above service max %v ms", l.Max, svc.Max)
	}
}

// TestOpenLoopKeepsTheSchedule: four idle clients, operations due every
// 200 ms, a cap of five: the fifth is due at 800 ms, so the phase cannot
// end sooner however fast the operations are.
func TestOpenLoopKeepsTheSchedule(t *testing.T) {
	var n atomic.Int64
	fast := func(context.Context) (int, error) { n.Add(1); return 1, nil }
	ph := runPhase(context.Background(), context.Background(), []op{fast, fast, fast, fast}, newPacer(time.Now(), 5, 5), cutOff, time.Second, nil)
	if ph.done != 5 || n.Load() != 5 {
		t.Fatalf("done %d, ran %d, want 5", ph.done, n.Load())
	}
	if ph.elapsed < 800*time.Millisecond {
		t.Fatalf("five operations at 5/s ended after %v, before the fifth was due", ph.elapsed)
	}
}

// TestClosedLoopCountsErrorsAndStopsAtTheCap: the cap is exact across
// clients, every operation is recorded, failures by kind.
func TestClosedLoopCountsErrorsAndStopsAtTheCap(t *testing.T) {
	var n atomic.Int64
	flaky := func(context.Context) (int, error) {
		if n.Add(1)%3 == 0 {
			return 2, &statusError{503}
		}
		return 2, nil
	}
	ph := runPhase(context.Background(), context.Background(), []op{flaky, flaky, flaky}, newPacer(time.Now(), 0, 30), cutOff, time.Second, nil)
	if ph.done != 30 || ph.failed != 10 || ph.httpReqs != 60 || ph.errs["503"] != 10 {
		t.Fatalf("done %d failed %d http %d errs %v, want 30, 10, 60, 503×10", ph.done, ph.failed, ph.httpReqs, ph.errs)
	}
	if len(ph.latencies) != 30 || ph.service != nil {
		t.Fatalf("%d latencies, service %v: want 30 and none (closed loop)", len(ph.latencies), ph.service)
	}
}

// TestDrainRunsEveryClientOnce: a warm-up whose time is up before its
// clients start still has each client make one operation; a cut-off
// phase makes none.
func TestDrainRunsEveryClientOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  phaseEnd
		want int64
	}{
		{"end=drain", drain, 3},
		{"end=cut off", cutOff, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			o := func(context.Context) (int, error) { n.Add(1); return 1, nil }
			stop, cancel := context.WithCancel(context.Background())
			cancel()
			ph := runPhase(context.Background(), stop, []op{o, o, o}, newPacer(time.Now(), 0, 0), tc.end, time.Second, nil)
			if ph.done != tc.want || n.Load() != tc.want {
				t.Fatalf("done %d, ran %d, want %d", ph.done, n.Load(), tc.want)
			}
		})
	}
}

// TestPhaseEnd: two operations are in flight when the phase's time is up
// and finish only after. Cut off (the measured phase), they are cancelled
// and count as neither success nor failure; drained (the warm-up), they
// run to their end uncancelled and count. Either way no new one starts.
func TestPhaseEnd(t *testing.T) {
	for _, tc := range []struct {
		name                string
		end                 phaseEnd
		wantDone, wantCancl int64
	}{
		{"end=cut off", cutOff, 0, 2},
		{"end=drain", drain, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var started, cancelled atomic.Int64
			held := func(ctx context.Context) (int, error) {
				started.Add(1)
				<-release
				if ctx.Err() != nil {
					cancelled.Add(1)
				}
				return 1, ctx.Err()
			}
			stop, cancel := context.WithCancel(context.Background())
			go func() {
				for started.Load() < 2 {
					time.Sleep(time.Millisecond)
				}
				cancel()
				close(release)
			}()
			ph := runPhase(context.Background(), stop, []op{held, held}, newPacer(time.Now(), 0, 0), tc.end, time.Second, nil)
			if ph.done != tc.wantDone || ph.failed != 0 || len(ph.errs) != 0 || started.Load() != 2 || cancelled.Load() != tc.wantCancl {
				t.Fatalf("done %d failed %d errs %v started %d cancelled %d; want done %d, no failure, 2 started, %d cancelled",
					ph.done, ph.failed, ph.errs, started.Load(), cancelled.Load(), tc.wantDone, tc.wantCancl)
			}
		})
	}
}
