package protect

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
)

// Endpoint classes, the keys of RateConfig.PerIP and RateConfig.PerClient.
const (
	ClassToken      = "token"
	ClassIntrospect = "introspect"
	ClassRevoke     = "revoke"
	ClassPAR        = "par"
	ClassLogin      = "login"
	ClassAdmin      = "admin"
	ClassUserinfo   = "userinfo"
	ClassRegister   = "register"
)

// Limit is a token bucket: Rate tokens per second refill a bucket holding at
// most Burst. A Limit with Rate <= 0 or Burst <= 0 means "no limit".
type Limit struct {
	Rate  float64 // tokens per second
	Burst int
}

func (l Limit) enabled() bool { return l.Rate > 0 && l.Burst > 0 }

// RateConfig configures a Limiter.
//
// Limits hold per replica: the buckets live in each process's memory, so
// with N replicas behind a load balancer a source may get up to N times the
// configured rate. Size limits with that in mind (or divide by N).
type RateConfig struct {
	// PerIP maps an endpoint class to the failure budget per source IP:
	// only failed requests take from it (see Middleware).
	PerIP map[string]Limit
	// PerClient maps an endpoint class to the limit per claimed OAuth
	// client id (every request counts).
	PerClient map[string]Limit
	// PerAccount maps an endpoint class to the limit per account a sign-in
	// form names (every attempt counts, successful or not).
	PerAccount map[string]Limit
	// ClientOverrides maps a client id to a limit that replaces its
	// PerClient limit in every class (buckets stay separate per class).
	ClientOverrides map[string]Limit
	// OnBlock is called for every refused request with the bucket key
	// "<class>:ip:<addr>" or "<class>:client:<id>", for audit and metrics
	// (SplitKey separates the class). Optional.
	OnBlock func(r *http.Request, key string)
	// MaxBuckets bounds memory; default 100 000.
	MaxBuckets int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Limiter enforces RateConfig. It is safe for concurrent use.
type Limiter struct {
	cfg RateConfig

	mu        sync.Mutex
	buckets   map[bucketKey]*bucket
	lastSweep time.Time
}

type bucketKey struct {
	class string
	kind  byte // 'i' ip, 'c' client
	value string
}

type bucket struct {
	tokens float64
	last   time.Time
	limit  Limit
}

// NewLimiter returns a Limiter for cfg.
func NewLimiter(cfg RateConfig) *Limiter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBuckets <= 0 {
		cfg.MaxBuckets = 100_000
	}
	return &Limiter{cfg: cfg, buckets: make(map[bucketKey]*bucket)}
}

// Failures is the per-address half of the limits: only failure signals
// count (PerIP). A response with status 400, 401 or 403, or a request a
// handler marked failed (reqinfo.MarkFailure, e.g. an invalid token at
// introspection), spends one token of the address's budget for the class;
// successes spend nothing, nor do protocol answers a handler marked
// expected (reqinfo.MarkExpected: a device's authorization_pending), so
// thousands of users behind one NAT or load balancer never run it down. An address whose budget is spent is refused
// until it refills. Place it before StrictInput, so malformed requests
// count too; the address comes from reqinfo.
func (l *Limiter) Failures(class string, kind Kind) mux.MiddlewareFunc {
	lim, ok := l.cfg.PerIP[class]
	if !ok || !lim.enabled() {
		return func(next http.Handler) http.Handler { return next }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := reqinfo.From(r.Context())
			if info == nil || !info.IP.IsValid() {
				next.ServeHTTP(w, r)
				return
			}
			key := bucketKey{class: class, kind: 'i', value: info.IP.String()}
			if ok, wait := l.take(key, lim, false); !ok {
				l.refuse(w, r, kind, class+":ip:"+key.value, wait)
				return
			}
			sw := &failureWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if (isFailure(sw.status) && !info.Expected()) || info.Failed() {
				l.take(key, lim, true)
			}
		})
	}
}

// Middleware is the per-identity half of the limits: every request counts
// against the claimed client id or API key (PerClient, ClientOverrides) and
// against the account a sign-in form names (PerAccount). Place it after
// StrictInput, which records both in reqinfo.
//
// Over a limit the response is 429 with Retry-After (whole seconds,
// rounded up), in the route's response format.
func (l *Limiter) Middleware(class string, kind Kind) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := reqinfo.From(r.Context())
			if id := info.ClaimedClientID(); id != "" {
				lim, ok := l.cfg.ClientOverrides[id]
				if !ok {
					lim, ok = l.cfg.PerClient[class]
				}
				if ok && lim.enabled() {
					if ok, wait := l.take(bucketKey{class: class, kind: 'c', value: id}, lim, true); !ok {
						l.refuse(w, r, kind, class+":client:"+id, wait)
						return
					}
				}
			}
			if acct := info.ClaimedAccount(); acct != "" {
				if lim, ok := l.cfg.PerAccount[class]; ok && lim.enabled() {
					if ok, wait := l.take(bucketKey{class: class, kind: 'a', value: acct}, lim, true); !ok {
						l.refuse(w, r, kind, class+":account", wait)
						return
					}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// isFailure says whether a status is a failure signal: bad input, failed
// authentication, refused authorization. 404, 429 and 5xx are not: they
// say nothing about the caller's intent.
func isFailure(status int) bool {
	return status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden
}

// failureWriter remembers the status code.
type failureWriter struct {
	http.ResponseWriter
	status int
}

func (w *failureWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *failureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *failureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// SplitKey splits an OnBlock key into the endpoint class and the source
// ("ip:<addr>" or "client:<id>").
func SplitKey(key string) (class, source string) {
	class, source, _ = strings.Cut(key, ":")
	return class, source
}

func (l *Limiter) refuse(w http.ResponseWriter, r *http.Request, kind Kind, key string, wait time.Duration) {
	if l.cfg.OnBlock != nil {
		l.cfg.OnBlock(r, key)
	}
	w.Header().Set("Retry-After", retryAfterSeconds(wait))
	refuse(w, kind, http.StatusTooManyRequests, "rate_limited", "Too many requests; retry later.")
}

// take refills the bucket at key (creating it full) and reports whether it
// holds a token; consume takes it. When empty it returns false and the time
// until a token is available.
func (l *Limiter) take(key bucketKey, lim Limit, consume bool) (bool, time.Duration) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		l.maybeSweep(now)
		b = &bucket{tokens: float64(lim.Burst), last: now, limit: lim}
		l.buckets[key] = b
	}
	b.limit = lim
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = math.Min(float64(lim.Burst), b.tokens+elapsed*lim.Rate)
		b.last = now
	}
	if b.tokens >= 1 {
		if consume {
			b.tokens--
		}
		return true, 0
	}
	need := (1 - b.tokens) / lim.Rate
	return false, time.Duration(math.Ceil(need * float64(time.Second)))
}

// Len reports how many buckets are held (for tests and metrics).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// maybeSweep keeps memory bounded. A bucket that has refilled completely is
// indistinguishable from a new one, so dropping it changes nothing; that is
// done at most once a second or whenever the map is full. If the map is
// still full, arbitrary buckets go: under a flood of distinct keys we prefer
// bounded memory to perfect accounting.
func (l *Limiter) maybeSweep(now time.Time) {
	full := len(l.buckets) >= l.cfg.MaxBuckets
	if !full && now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		refill := time.Duration(float64(b.limit.Burst) / b.limit.Rate * float64(time.Second))
		if now.Sub(b.last) >= refill {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.cfg.MaxBuckets*9/10 {
			break
		}
		delete(l.buckets, k)
	}
}

const formType = "application/x-www-form-urlencoded"
