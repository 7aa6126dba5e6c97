package forwardauth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per credential (client id or API key id), per
// replica. It never keys on the source address: a gateway sends every
// caller's checks from its own address.
type limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	rate    rate.Limit
	burst   int
	max     int
	now     func() time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst, max int, now func() time.Time) *limiter {
	return &limiter{buckets: map[string]*bucket{}, rate: rate.Limit(perSecond), burst: burst, max: max, now: now}
}

func (l *limiter) allow(key string) bool {
	now := l.now()
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweepLocked(now, 0)
		}
		b = &bucket{l: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	l.mu.Unlock()
	return b.l.AllowN(now, 1)
}

// sweep drops buckets idle for a minute: a full bucket again by then.
func (l *limiter) sweep() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(l.now(), time.Minute)
}

func (l *limiter) sweepLocked(now time.Time, idle time.Duration) {
	for k, b := range l.buckets {
		if now.Sub(b.seen) >= idle {
			delete(l.buckets, k)
		}
	}
}
