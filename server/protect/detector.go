package protect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
)

// Signal is a kind of suspicious event the Detector counts.
type Signal string

// Signals reported by the handlers.
const (
	SignalFailedLogin   Signal = "failed_login"   // wrong password at the login page
	SignalInvalidClient Signal = "invalid_client" // failed client authentication
	SignalInvalidToken  Signal = "invalid_token"  // introspection of an unknown/invalid token
	SignalRefreshReuse  Signal = "refresh_reuse"  // a rotated refresh token presented again
	// SignalInvalidUserCode is a wrong or expired device user code entered
	// at /device (RFC 8628 §5.1: user code guessing).
	SignalInvalidUserCode Signal = "invalid_user_code"
)

// Block kinds, as stored in storage.Block.Kind.
const (
	BlockIP     = "ip"
	BlockClient = "client"
)

// BlocksChannel is the Notifier channel on which block changes are
// announced; every replica reloads its cache when a message arrives.
const BlocksChannel = "bulwark_blocks"

// Threshold acts on a source that produced Count signals within Window:
// it blocks the source for BlockFor, or, with AlertOnly, raises an alert
// (audit event "anomaly.alert" and a metric) and blocks nothing.
type Threshold struct {
	Count    int
	Window   time.Duration
	BlockFor time.Duration
	// Distinct counts distinct accounts instead of signals (credential
	// stuffing: failed sign-ins across many accounts from one address,
	// as opposed to one user mistyping a password).
	Distinct bool
	// AlertOnly raises an alert instead of blocking.
	AlertOnly bool
}

// DetectorConfig configures a Detector.
type DetectorConfig struct {
	// Store keeps blocks so every replica (and a restart) sees them. Required.
	Store storage.BlockStore
	// Notifier announces changes on BlocksChannel. Optional: without it,
	// other replicas learn of blocks at the next periodic reload.
	Notifier storage.Notifier
	// PerIP and PerClient map a signal to the threshold for one source IP
	// or one client id. A signal without a threshold is not counted.
	PerIP     map[Signal]Threshold
	PerClient map[Signal]Threshold
	// Audit records a "block.placed" event when a threshold is crossed.
	// Optional (wire audit.Sink.Record).
	Audit func(ctx context.Context, e storage.AuditEvent)
	// OnBlock is called with the block kind ("ip" or "client") for every
	// request the middleware refuses (metrics). Optional.
	OnBlock func(kind string)
	// OnPlaced is called for every block a threshold places, and OnAlert
	// for every alert, with the block kind and the signal (metrics).
	// Optional.
	OnPlaced, OnAlert func(kind string, sig Signal)
	// NeverBlock lists networks whose addresses are never blocked, by a
	// threshold or by hand (an office, a partner's egress, the load
	// balancer itself).
	NeverBlock []netip.Prefix
	// Log receives store failures. Required.
	Log logrus.FieldLogger
	// ReloadEvery is the periodic reload in Run, the safety net behind
	// notifications [30s].
	ReloadEvery time.Duration
	// StoreTimeout bounds each store call made on the request path [2s].
	StoreTimeout time.Duration
	// MaxKeys bounds the counters kept in memory [100 000].
	MaxKeys int
	// Now is the clock [time.Now].
	Now func() time.Time
}

// Detector counts suspicious signals per (signal, IP) and (signal, client)
// in sliding windows and, when a threshold is crossed, places a temporary
// storage.Block, announces it to other replicas and refuses the source. It
// is safe for concurrent use.
type Detector struct {
	cfg DetectorConfig

	mu       sync.Mutex
	counters map[counterKey]*slidingCounter
	blocks   map[blockKey]time.Time // -> expiry
}

type counterKey struct {
	signal Signal
	kind   string
	value  string
}

type blockKey struct{ kind, value string }

// NewDetector validates cfg and returns a Detector with an empty cache;
// call Reload (or Run) to load existing blocks.
func NewDetector(cfg DetectorConfig) (*Detector, error) {
	var problems []error
	if cfg.Store == nil {
		problems = append(problems, errors.New("protect: detector Store is required"))
	}
	if cfg.Log == nil {
		problems = append(problems, errors.New("protect: detector Log is required"))
	}
	for sig, th := range cfg.PerIP {
		if th.Count <= 0 || th.Window <= 0 || th.BlockFor <= 0 {
			problems = append(problems, fmt.Errorf("protect: per-IP threshold for %s needs positive Count, Window and BlockFor", sig))
		}
	}
	for sig, th := range cfg.PerClient {
		if th.Count <= 0 || th.Window <= 0 || th.BlockFor <= 0 {
			problems = append(problems, fmt.Errorf("protect: per-client threshold for %s needs positive Count, Window and BlockFor", sig))
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if cfg.ReloadEvery <= 0 {
		cfg.ReloadEvery = 30 * time.Second
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 2 * time.Second
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 100_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Detector{
		cfg:      cfg,
		counters: make(map[counterKey]*slidingCounter),
		blocks:   make(map[blockKey]time.Time),
	}, nil
}

// Observe records one signal from ip and/or clientID (either may be empty /
// invalid) and blocks the source if its threshold is crossed.
func (d *Detector) Observe(ctx context.Context, sig Signal, ip netip.Addr, clientID string) {
	if th, ok := d.cfg.PerIP[sig]; ok && ip.IsValid() && !d.neverBlock(ip) {
		d.observe(ctx, sig, th, BlockIP, ip.Unmap().String(), "")
	}
	if th, ok := d.cfg.PerClient[sig]; ok && clientID != "" {
		d.observe(ctx, sig, th, BlockClient, clientID, "")
	}
}

// ObserveLogin records a failed sign-in for account from ip. A per-IP
// threshold with Distinct counts the distinct accounts an address fails
// on, which is what tells credential stuffing from a user who mistyped.
func (d *Detector) ObserveLogin(ctx context.Context, ip netip.Addr, account string) {
	if th, ok := d.cfg.PerIP[SignalFailedLogin]; ok && ip.IsValid() && !d.neverBlock(ip) {
		d.observe(ctx, SignalFailedLogin, th, BlockIP, ip.Unmap().String(), normalizeAccount(account))
	}
}

func (d *Detector) neverBlock(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range d.cfg.NeverBlock {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (d *Detector) observe(ctx context.Context, sig Signal, th Threshold, kind, value, account string) {
	now := d.cfg.Now()
	d.mu.Lock()
	if exp, ok := d.blocks[blockKey{kind, value}]; ok && now.Before(exp) {
		d.mu.Unlock()
		return
	}
	k := counterKey{sig, kind, value}
	c := d.counters[k]
	if c == nil {
		d.sweepLocked(now)
		c = &slidingCounter{window: th.Window}
		d.counters[k] = c
	}
	var n float64
	if th.Distinct {
		n = c.addDistinct(now, account, th.Count)
	} else {
		n = c.add(now)
	}
	crossed := n >= float64(th.Count)
	if crossed {
		delete(d.counters, k)
	}
	d.mu.Unlock()
	if !crossed {
		return
	}
	if th.AlertOnly {
		d.alert(ctx, sig, th, kind, value)
		return
	}
	if d.cfg.OnPlaced != nil {
		d.cfg.OnPlaced(kind, sig)
	}
	b := &storage.Block{
		Kind:      kind,
		Value:     value,
		Reason:    "anomaly: " + string(sig),
		CreatedAt: now,
		ExpiresAt: now.Add(th.BlockFor),
	}
	// The request may be cancelled by a client that hangs up right after
	// its last bad attempt; the block must be placed anyway.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.StoreTimeout)
	defer cancel()
	if err := d.place(ctx, b); err != nil {
		d.cfg.Log.WithError(err).WithFields(logrus.Fields{"kind": kind, "signal": string(sig)}).Error("storing anomaly block failed; blocking on this replica only")
	}
	if d.cfg.Audit != nil {
		e := storage.AuditEvent{
			Event:   "block.placed",
			Actor:   "system:anomaly",
			Outcome: "blocked",
			Details: map[string]string{
				"kind":       kind,
				"signal":     string(sig),
				"count":      strconv.Itoa(th.Count),
				"window":     th.Window.String(),
				"expires_at": b.ExpiresAt.UTC().Format(time.RFC3339),
			},
		}
		if kind == BlockIP {
			e.SourceIP = value
		} else {
			e.ClientID = value
		}
		d.cfg.Audit(ctx, e)
	}
}

// alert reports a crossed AlertOnly threshold: an audit event and a metric,
// and nothing refused.
func (d *Detector) alert(ctx context.Context, sig Signal, th Threshold, kind, value string) {
	if d.cfg.OnAlert != nil {
		d.cfg.OnAlert(kind, sig)
	}
	d.cfg.Log.WithFields(logrus.Fields{"kind": kind, "signal": string(sig), "count": th.Count, "window": th.Window.String()}).Warn("anomaly threshold crossed; alerting only (blocking this kind of source is not enabled)")
	if d.cfg.Audit == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.StoreTimeout)
	defer cancel()
	e := storage.AuditEvent{
		Event:   "anomaly.alert",
		Actor:   "system:anomaly",
		Outcome: "alert",
		Details: map[string]string{"kind": kind, "signal": string(sig), "count": strconv.Itoa(th.Count), "window": th.Window.String()},
	}
	if kind == BlockIP {
		e.SourceIP = value
	} else {
		e.ClientID = value
	}
	d.cfg.Audit(ctx, e)
}

// ErrNeverBlock refuses a manual block of an address in a never-block
// network.
var ErrNeverBlock = errors.New("protect: the address is in a never-block network")

// Block places a block by hand (admin API) for dur.
func (d *Detector) Block(ctx context.Context, kind, value, reason string, dur time.Duration) error {
	if kind != BlockIP && kind != BlockClient {
		return fmt.Errorf("protect: unknown block kind %q", kind)
	}
	if kind == BlockIP {
		a, err := netip.ParseAddr(value)
		if err != nil {
			return fmt.Errorf("protect: block value is not an IP address: %w", err)
		}
		if d.neverBlock(a) {
			return ErrNeverBlock
		}
		value = a.Unmap().String()
	}
	now := d.cfg.Now()
	return d.place(ctx, &storage.Block{Kind: kind, Value: value, Reason: reason, CreatedAt: now, ExpiresAt: now.Add(dur)})
}

// place caches the block first, so this replica refuses the source even if
// the store is down, then stores and announces it.
func (d *Detector) place(ctx context.Context, b *storage.Block) error {
	d.mu.Lock()
	d.blocks[blockKey{b.Kind, b.Value}] = b.ExpiresAt
	d.mu.Unlock()
	if err := d.cfg.Store.PutBlock(ctx, b); err != nil {
		return fmt.Errorf("protect: put block: %w", err)
	}
	d.notify(ctx)
	return nil
}

func (d *Detector) notify(ctx context.Context) {
	if d.cfg.Notifier == nil {
		return
	}
	if err := d.cfg.Notifier.Notify(ctx, BlocksChannel, "reload"); err != nil {
		d.cfg.Log.WithError(err).Warn("announcing block change failed; other replicas will see it at the next reload")
	}
}

// Blocked reports whether the source is blocked now, from the in-memory
// cache (no I/O on the request path).
func (d *Detector) Blocked(kind, value string) bool {
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	exp, ok := d.blocks[blockKey{kind, value}]
	return ok && now.Before(exp)
}

// Lift removes a block everywhere: store, this cache, other replicas.
func (d *Detector) Lift(ctx context.Context, kind, value string) error {
	if err := d.cfg.Store.DeleteBlock(ctx, kind, value); err != nil {
		return fmt.Errorf("protect: delete block: %w", err)
	}
	d.mu.Lock()
	delete(d.blocks, blockKey{kind, value})
	d.mu.Unlock()
	d.notify(ctx)
	return nil
}

// List returns the blocks in force, from the store.
func (d *Detector) List(ctx context.Context) ([]*storage.Block, error) {
	bs, err := d.cfg.Store.ListBlocks(ctx, d.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("protect: list blocks: %w", err)
	}
	return bs, nil
}

// Reload replaces the cache with the blocks in the store, so blocks placed
// or lifted by other replicas take effect here.
func (d *Detector) Reload(ctx context.Context) error {
	bs, err := d.List(ctx)
	if err != nil {
		return err
	}
	m := make(map[blockKey]time.Time, len(bs))
	for _, b := range bs {
		m[blockKey{b.Kind, b.Value}] = b.ExpiresAt
	}
	d.mu.Lock()
	d.blocks = m
	d.mu.Unlock()
	return nil
}

// Run reloads blocks at start, every ReloadEvery and whenever a message
// arrives on BlocksChannel, until ctx ends. Reload failures are logged and
// retried at the next tick; Run returns only ctx.Err().
func (d *Detector) Run(ctx context.Context) error {
	var msgs <-chan string
	if d.cfg.Notifier != nil {
		ch, err := d.cfg.Notifier.Subscribe(ctx, BlocksChannel)
		if err != nil {
			d.cfg.Log.WithError(err).Warn("subscribing to block changes failed; relying on periodic reload")
		} else {
			msgs = ch
		}
	}
	reload := func() {
		rctx, cancel := context.WithTimeout(ctx, d.cfg.StoreTimeout)
		defer cancel()
		if err := d.Reload(rctx); err != nil && ctx.Err() == nil {
			d.cfg.Log.WithError(err).Warn("reloading blocks failed")
		}
	}
	reload()
	t := time.NewTicker(d.cfg.ReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			reload()
		case _, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			reload()
		}
	}
}

// Middleware refuses requests from a blocked address or a blocked claimed
// client id with 403 access_denied, in the route's response format. Both
// facts come from reqinfo; place it after StrictInput, which records the
// claimed client id. Addresses in a never-block network are never refused.
func (d *Detector) Middleware(kind Kind) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := reqinfo.From(r.Context())
			blocked := ""
			if info != nil && info.IP.IsValid() && d.Blocked(BlockIP, info.IP.String()) && !d.neverBlock(info.IP) {
				blocked = BlockIP
			} else if id := info.ClaimedClientID(); id != "" && d.Blocked(BlockClient, id) {
				blocked = BlockClient
			}
			if blocked != "" {
				if d.cfg.OnBlock != nil {
					d.cfg.OnBlock(blocked)
				}
				refuse(w, kind, http.StatusForbidden, "access_denied", "Requests from this source are temporarily blocked.")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (d *Detector) sweepLocked(now time.Time) {
	if len(d.counters) < d.cfg.MaxKeys {
		return
	}
	for k, c := range d.counters {
		if c.value(now) == 0 {
			delete(d.counters, k)
		}
	}
	for k := range d.counters {
		if len(d.counters) < d.cfg.MaxKeys*9/10 {
			break
		}
		delete(d.counters, k)
	}
}

// slidingCounter approximates a sliding window with two fixed windows
// weighted by overlap (constant memory per key): count = prev*(1-f) + cur,
// where f is how far we are into the current window.
type slidingCounter struct {
	window    time.Duration
	start     time.Time // start of the current fixed window
	prev, cur float64
	// seen and seenSince count distinct accounts in a fixed window.
	seen      map[string]struct{}
	seenSince time.Time
}

func (c *slidingCounter) roll(now time.Time) {
	if c.start.IsZero() {
		c.start = now
		return
	}
	switch elapsed := now.Sub(c.start); {
	case elapsed >= 2*c.window:
		c.prev, c.cur = 0, 0
		c.start = now
	case elapsed >= c.window:
		c.prev, c.cur = c.cur, 0
		c.start = c.start.Add(c.window)
	}
}

func (c *slidingCounter) value(now time.Time) float64 {
	c.roll(now)
	f := float64(now.Sub(c.start)) / float64(c.window)
	return c.prev*(1-f) + c.cur
}

// addDistinct counts account once per window and returns how many distinct
// accounts were seen. The set holds at most limit names: more cannot change
// the decision.
func (c *slidingCounter) addDistinct(now time.Time, account string, limit int) float64 {
	c.roll(now)
	if c.seen == nil || now.Sub(c.seenSince) >= c.window {
		c.seen, c.seenSince = map[string]struct{}{}, now
	}
	if _, ok := c.seen[account]; !ok && len(c.seen) < limit {
		c.seen[account] = struct{}{}
	}
	return float64(len(c.seen))
}

func (c *slidingCounter) add(now time.Time) float64 {
	c.roll(now)
	c.cur++
	return c.value(now)
}
