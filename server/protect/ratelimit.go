package protect

import (
	"bytes"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
)

// Endpoint classes, the keys of RateConfig.PerIP and RateConfig.PerClient.
const (
	ClassToken      = "token"
	ClassIntrospect = "introspect"
	ClassRevoke     = "revoke"
	ClassPAR        = "par"
	ClassLogin      = "login"
	ClassAdmin      = "admin"
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
	// PerIP maps an endpoint class to the limit per source IP.
	PerIP map[string]Limit
	// PerClient maps an endpoint class to the limit per OAuth client id.
	PerClient map[string]Limit
	// ClientOverrides maps a client id to a limit that replaces its
	// PerClient limit in every class (buckets stay separate per class).
	ClientOverrides map[string]Limit
	// IPs resolves the source IP; nil means the direct peer only.
	IPs *IPResolver
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
	if cfg.IPs == nil {
		cfg.IPs = NewIPResolver(nil)
	}
	return &Limiter{cfg: cfg, buckets: make(map[bucketKey]*bucket)}
}

// Middleware limits requests of one endpoint class. clientID extracts the
// client id (ClientIDFromRequest for OAuth endpoints); nil disables the
// per-client limit. The per-IP bucket is checked first, so a refused IP does
// not drain the client's bucket.
//
// Over the limit the response is 429 with Retry-After (whole seconds,
// rounded up) and {"error":"rate_limited",...}.
func (l *Limiter) Middleware(class string, clientID func(*http.Request) string) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if lim, ok := l.cfg.PerIP[class]; ok && lim.enabled() {
				ip := l.cfg.IPs.IP(r)
				if ok, wait := l.allow(bucketKey{class: class, kind: 'i', value: ip.String()}, lim); !ok {
					l.refuse(w, r, class+":ip:"+ip.String(), wait)
					return
				}
			}
			if clientID != nil {
				if id := clientID(r); id != "" {
					lim, ok := l.cfg.ClientOverrides[id]
					if !ok {
						lim, ok = l.cfg.PerClient[class]
					}
					if ok && lim.enabled() {
						if ok, wait := l.allow(bucketKey{class: class, kind: 'c', value: id}, lim); !ok {
							l.refuse(w, r, class+":client:"+id, wait)
							return
						}
					}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// SplitKey splits an OnBlock key into the endpoint class and the source
// ("ip:<addr>" or "client:<id>").
func SplitKey(key string) (class, source string) {
	class, source, _ = strings.Cut(key, ":")
	return class, source
}

func (l *Limiter) refuse(w http.ResponseWriter, r *http.Request, key string, wait time.Duration) {
	if l.cfg.OnBlock != nil {
		l.cfg.OnBlock(r, key)
	}
	w.Header().Set("Retry-After", retryAfterSeconds(wait))
	writeError(w, http.StatusTooManyRequests, "rate_limited", "Too many requests; retry later.")
}

// allow takes one token from the bucket at key, creating it full. It
// returns false and the time until a token is available when empty.
func (l *Limiter) allow(key bucketKey, lim Limit) (bool, time.Duration) {
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
		b.tokens--
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

// maxClientIDBody caps how much body ClientIDFromRequest reads if no body
// limit ran before it.
const maxClientIDBody = 64 << 10

// ClientIDFromRequest returns the client id a request claims: the HTTP Basic
// username (form-decoded, RFC 6749 §2.3.1) or, for a form POST, the
// client_id parameter. It reads at most 64 KiB of the body and puts back
// exactly what it read, so the next handler sees the whole body. The id is
// unauthenticated: use it to key limits, never to grant anything.
func ClientIDFromRequest(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok {
		if u, err := url.QueryUnescape(user); err == nil {
			return u
		}
		return user
	}
	if id := r.URL.Query().Get("client_id"); id != "" && r.Method == http.MethodGet {
		return id
	}
	if r.Body == nil || r.Body == http.NoBody || !isForm(r) {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxClientIDBody))
	r.Body = restoredBody{Reader: io.MultiReader(bytes.NewReader(b), r.Body), Closer: r.Body}
	if err != nil {
		return ""
	}
	vals, err := url.ParseQuery(string(b))
	if err != nil {
		return ""
	}
	return vals.Get("client_id")
}

type restoredBody struct {
	io.Reader
	io.Closer
}

func isForm(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && strings.EqualFold(mt, formType)
}

const formType = "application/x-www-form-urlencoded"
