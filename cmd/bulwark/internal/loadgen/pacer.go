package loadgen

import (
	"context"
	"sync/atomic"
	"time"
)

// pacer hands out the operations of one scenario's measured phase.
//
// Closed loop (rate 0): an operation is due when a client takes it, i.e.
// when that client's previous operation ended. With N clients this
// measures the most the server does with N callers; the latency is then
// mostly N ÷ throughput (Little's law) and says little about how fast a
// server that is not saturated answers.
//
// Open loop (rate > 0): operation i is due at start + i/rate, whether or
// not the server has kept up. A client takes the next operation; if it is
// already due (the client is late), latency counts from when it was due,
// otherwise the client sleeps and latency counts from when it woke. So an
// operation that waited for a free client (because the server was slow to
// answer the previous ones) carries that wait — measuring from the send
// would hide every stall behind the clients it held up ("coordinated
// omission") — while a timer that wakes a sleeping client late (the load
// tool's own slack, ~0.1–1 ms) is not charged to the server.
type pacer struct {
	start    time.Time
	interval float64 // seconds between operations; 0: closed loop
	max      int64   // 0: no cap
	next     atomic.Int64
}

func newPacer(start time.Time, rate float64, maxOps int64) *pacer {
	p := &pacer{start: start, max: maxOps}
	if rate > 0 {
		p.interval = 1 / rate
	}
	return p
}

func (p *pacer) open() bool { return p.interval > 0 }

// take claims the next operation and returns when it is due; ok is false
// once the cap is reached. Closed loop, it is due now.
func (p *pacer) take() (due time.Time, ok bool) {
	i := p.next.Add(1) - 1
	if p.max > 0 && i >= p.max {
		return time.Time{}, false
	}
	if !p.open() {
		return time.Now(), true
	}
	return p.start.Add(time.Duration(float64(i) * p.interval * float64(time.Second))), true
}

// waiter sleeps a client until its next operation is due, reusing one
// timer.
type waiter struct{ t *time.Timer }

func newWaiter() *waiter {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{t: t}
}

// until waits for due and returns when the operation's latency starts:
// due itself if it had already passed (the client was late: that wait is
// the server's), otherwise the moment the timer woke the client. ok is
// false if ctx ended first.
func (w *waiter) until(ctx context.Context, due time.Time) (from time.Time, ok bool) {
	d := time.Until(due)
	if d <= 0 {
		return due, ctx.Err() == nil
	}
	w.t.Reset(d)
	select {
	case <-w.t.C:
		return time.Now(), true
	case <-ctx.Done():
		w.t.Stop()
		return time.Time{}, false
	}
}

func (w *waiter) stop() { w.t.Stop() }
