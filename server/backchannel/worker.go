package backchannel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite/token/jwt"
	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"

	"github.com/bulwark-auth/bulwark/server/egress"
	"github.com/bulwark-auth/bulwark/storage"
)

// Store is what the Worker needs of the backend.
type Store interface {
	ClaimLogouts(ctx context.Context, lease string, until time.Time, limit int) ([]*storage.BackchannelLogout, error)
	FinishLogout(ctx context.Context, id int64, lease string) (bool, error)
	ReleaseLogout(ctx context.Context, id int64, lease string, next time.Time, failure string) (bool, error)
	ClientByID(ctx context.Context, id string) (*storage.Client, error)
	Subscribe(ctx context.Context, channel string) (<-chan string, error)
}

// Doer sends a request under the egress rules and returns the status and
// (capped) body: *egress.Client.
type Doer interface {
	Do(req *http.Request) (int, []byte, error)
}

// Defaults for Config fields left zero.
const (
	DefaultPoll          = 5 * time.Second
	DefaultTimeout       = 10 * time.Second
	DefaultLease         = 30 * time.Second
	DefaultRetryMin      = 5 * time.Second
	DefaultRetryMax      = 10 * time.Minute
	DefaultMaxAge        = 24 * time.Hour
	DefaultTokenLifetime = 2 * time.Minute
	DefaultClientRate    = 10 // logout tokens per second per client
	DefaultClientBurst   = 20
	DefaultBatch         = 20
	DefaultConcurrency   = 4
)

// Config configures a Worker.
type Config struct {
	Store Store
	// Signer signs logout tokens: the key ring's ID token signer.
	Signer jwt.Signer
	// Signers, by algorithm, sign the logout tokens of clients registered
	// with an id_token_signed_response_alg: §2.4 signs logout tokens with
	// the keys of ID tokens, so the relying party verifies both alike.
	// A client whose algorithm is missing here gets Signer's.
	Signers map[string]jwt.Signer
	Issuer  string
	// HTTP sends the tokens: the server/egress client, so the SSRF rules
	// of every client-registered URL apply.
	HTTP    Doer
	Metrics *Metrics
	// Audit receives one event per delivery, failure and abandonment.
	Audit  func(ctx context.Context, e storage.AuditEvent)
	Now    func() time.Time
	Logger logrus.FieldLogger

	// Poll is how often the worker looks for due rows when no
	// notification wakes it.
	Poll time.Duration
	// Timeout bounds one delivery; Lease (how long a claimed row stays
	// with this worker) must exceed it, so only a dead worker's rows are
	// taken over.
	Timeout time.Duration
	Lease   time.Duration
	// RetryMin is the wait after the first failure; it doubles per failure
	// up to RetryMax. A logout still undelivered MaxAge after it was
	// queued is abandoned (audited).
	RetryMin, RetryMax, MaxAge time.Duration
	// TokenLifetime is exp - iat of a logout token.
	TokenLifetime time.Duration
	// ClientRate and ClientBurst limit deliveries per client, per replica.
	ClientRate  rate.Limit
	ClientBurst int
	// Batch is how many rows one claim takes; Concurrency how many are
	// delivered at once.
	Batch, Concurrency int
}

// Worker delivers queued logout tokens. Run it on every replica.
type Worker struct {
	cfg Config

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// NewWorker checks cfg, reporting every problem at once, and applies the
// defaults.
func NewWorker(cfg Config) (*Worker, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if cfg.Signer == nil {
		errs = append(errs, errors.New("signer is required"))
	}
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if cfg.HTTP == nil {
		errs = append(errs, errors.New("HTTP client is required"))
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"poll interval", &cfg.Poll, DefaultPoll},
		{"timeout", &cfg.Timeout, DefaultTimeout},
		{"lease", &cfg.Lease, DefaultLease},
		{"minimum retry", &cfg.RetryMin, DefaultRetryMin},
		{"maximum retry", &cfg.RetryMax, DefaultRetryMax},
		{"maximum age", &cfg.MaxAge, DefaultMaxAge},
		{"token lifetime", &cfg.TokenLifetime, DefaultTokenLifetime},
	} {
		switch {
		case *d.v < 0:
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if cfg.Lease <= cfg.Timeout {
		errs = append(errs, fmt.Errorf("lease (%s) must exceed the delivery timeout (%s)", cfg.Lease, cfg.Timeout))
	}
	if cfg.RetryMax < cfg.RetryMin {
		errs = append(errs, errors.New("maximum retry must not be below the minimum"))
	}
	if cfg.ClientRate < 0 || cfg.ClientBurst < 0 || cfg.Batch < 0 || cfg.Concurrency < 0 {
		errs = append(errs, errors.New("rate, burst, batch and concurrency must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("backchannel: invalid config: %w", errors.Join(errs...))
	}
	if cfg.ClientRate == 0 {
		cfg.ClientRate = DefaultClientRate
	}
	if cfg.ClientBurst == 0 {
		cfg.ClientBurst = DefaultClientBurst
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Audit == nil {
		cfg.Audit = func(context.Context, storage.AuditEvent) {}
	}
	if cfg.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Logger = l
	}
	return &Worker{cfg: cfg, limiters: map[string]*rate.Limiter{}}, nil
}

// Run delivers until ctx ends: at start, whenever a notification on
// storage.BackchannelChannel arrives, and every Poll.
func (w *Worker) Run(ctx context.Context) {
	wake, err := w.cfg.Store.Subscribe(ctx, storage.BackchannelChannel)
	if err != nil {
		w.cfg.Logger.WithError(err).Warn("back-channel logout: cannot subscribe to notifications; polling only")
		wake = nil
	}
	tick := time.NewTicker(w.cfg.Poll)
	defer tick.Stop()
	for {
		w.drain(ctx)
		select {
		case <-ctx.Done():
			return
		case _, ok := <-wake:
			if !ok {
				wake = nil
			}
		case <-tick.C:
		}
	}
}

// drain claims and delivers due rows until none are left.
func (w *Worker) drain(ctx context.Context) {
	for ctx.Err() == nil {
		lease, err := newLease()
		if err != nil {
			w.cfg.Logger.WithError(err).Error("back-channel logout: lease id")
			return
		}
		rows, err := w.cfg.Store.ClaimLogouts(ctx, lease, w.cfg.Now().Add(w.cfg.Lease), w.cfg.Batch)
		if err != nil {
			if ctx.Err() == nil {
				w.cfg.Logger.WithError(err).Warn("back-channel logout: claim failed")
			}
			return
		}
		sem := make(chan struct{}, w.cfg.Concurrency)
		var wg sync.WaitGroup
		for _, l := range rows {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				w.deliver(ctx, lease, l)
			}()
		}
		wg.Wait()
		if len(rows) < w.cfg.Batch {
			return
		}
	}
}

func newLease() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("backchannel: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// deliver makes one attempt at row l, which this worker holds under lease.
func (w *Worker) deliver(ctx context.Context, lease string, l *storage.BackchannelLogout) {
	now := w.cfg.Now()
	if now.Sub(l.CreatedAt) > w.cfg.MaxAge {
		w.abandon(ctx, lease, l, "maximum age reached")
		return
	}
	c, err := w.cfg.Store.ClientByID(ctx, l.ClientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		w.abandon(ctx, lease, l, "client deleted")
		return
	case err != nil:
		// The store is unreachable: try again later, not counted against
		// the relying party.
		w.release(ctx, lease, l, now.Add(w.cfg.RetryMin), "")
		return
	case c.BackchannelLogoutURI == "":
		w.abandon(ctx, lease, l, "client has no backchannel_logout_uri")
		return
	}
	if !w.admit(ctx, lease, l, now) {
		return
	}
	signer := w.cfg.Signer
	if s, ok := w.cfg.Signers[c.IDTokenSignedResponseAlg]; ok {
		signer = s
	}
	status, reason, err := w.post(ctx, signer, c.BackchannelLogoutURI, l)
	if ctx.Err() != nil {
		// Shutting down: leave the row to its lease, like a crash would.
		return
	}
	if err == nil {
		if ok, ferr := w.cfg.Store.FinishLogout(ctx, l.ID, lease); ferr != nil || !ok {
			w.cfg.Logger.WithError(ferr).WithField("logout_id", l.ID).Warn("back-channel logout: delivered, but the row could not be finished (it may be delivered again; the jti is the same)")
		}
		w.cfg.Metrics.outcome(outcomeDelivered)
		w.audit(ctx, "backchannel_logout.delivered", "success", l, map[string]string{"status": strconv.Itoa(status), "attempt": strconv.Itoa(l.Attempts + 1)})
		return
	}
	w.fail(ctx, lease, l, now, status, reason, err)
}

// admit applies the per-client rate limit: a short wait is taken, a long
// one releases the row until the limiter has room (not a failure).
func (w *Worker) admit(ctx context.Context, lease string, l *storage.BackchannelLogout, now time.Time) bool {
	r := w.limiter(l.ClientID).ReserveN(now, 1)
	if !r.OK() {
		w.release(ctx, lease, l, now.Add(w.cfg.RetryMin), "")
		w.cfg.Metrics.outcome(outcomeDeferred)
		return false
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return true
	}
	if d > (w.cfg.Lease-w.cfg.Timeout)/2 {
		r.CancelAt(now)
		w.release(ctx, lease, l, now.Add(d), "")
		w.cfg.Metrics.outcome(outcomeDeferred)
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (w *Worker) limiter(clientID string) *rate.Limiter {
	w.mu.Lock()
	defer w.mu.Unlock()
	lim, ok := w.limiters[clientID]
	if !ok {
		lim = rate.NewLimiter(w.cfg.ClientRate, w.cfg.ClientBurst)
		w.limiters[clientID] = lim
	}
	return lim
}

// post signs the token and sends it (§2.5: a form-encoded POST of
// logout_token). It returns the status, and on failure a bounded reason
// label and the error.
func (w *Worker) post(ctx context.Context, signer jwt.Signer, uri string, l *storage.BackchannelLogout) (int, string, error) {
	tok, err := sign(ctx, signer, w.cfg.Issuer, l, w.cfg.Now(), w.cfg.TokenLifetime)
	if err != nil {
		return 0, reasonSign, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	body := url.Values{"logout_token": {tok}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return 0, reasonRequest, fmt.Errorf("backchannel: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cache-Control", "no-store")
	status, _, err := w.cfg.HTTP.Do(req)
	switch {
	case errors.Is(err, egress.ErrForbiddenAddress):
		return status, reasonForbiddenAddress, err
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return status, reasonTimeout, err
	case err != nil:
		return status, reasonConnection, err
	case status < 200 || status > 299:
		return status, reasonStatus, fmt.Errorf("backchannel: relying party answered %d", status)
	}
	return status, "", nil
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// fail records a failed attempt and schedules the next one, or abandons
// the row when the next attempt would come after its maximum age.
func (w *Worker) fail(ctx context.Context, lease string, l *storage.BackchannelLogout, now time.Time, status int, reason string, err error) {
	w.cfg.Metrics.failure(reason)
	attempt := l.Attempts + 1
	details := map[string]string{"reason": reason, "attempt": strconv.Itoa(attempt)}
	if status != 0 {
		details["status"] = strconv.Itoa(status)
	}
	w.cfg.Logger.WithError(err).WithFields(logrus.Fields{"client_id": l.ClientID, "attempt": attempt, "reason": reason}).
		Warn("back-channel logout delivery failed")
	w.audit(ctx, "backchannel_logout.failed", "failure", l, details)
	next := now.Add(w.backoff(attempt))
	if next.Sub(l.CreatedAt) > w.cfg.MaxAge {
		w.abandon(ctx, lease, l, "maximum age reached")
		return
	}
	failure := reason
	if status != 0 {
		failure = "status " + strconv.Itoa(status)
	}
	w.release(ctx, lease, l, next, failure)
}

// backoff is RetryMin doubled per earlier failure, at most RetryMax.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.cfg.RetryMin
	for i := 1; i < attempt && d < w.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, w.cfg.RetryMax)
}

func (w *Worker) release(ctx context.Context, lease string, l *storage.BackchannelLogout, next time.Time, failure string) {
	if _, err := w.cfg.Store.ReleaseLogout(ctx, l.ID, lease, next, failure); err != nil && ctx.Err() == nil {
		w.cfg.Logger.WithError(err).WithField("logout_id", l.ID).Warn("back-channel logout: release failed (the lease runs out instead)")
	}
}

func (w *Worker) abandon(ctx context.Context, lease string, l *storage.BackchannelLogout, why string) {
	ok, err := w.cfg.Store.FinishLogout(ctx, l.ID, lease)
	if err != nil || !ok {
		if ctx.Err() == nil {
			w.cfg.Logger.WithError(err).WithField("logout_id", l.ID).Warn("back-channel logout: could not abandon the row")
		}
		return
	}
	w.cfg.Metrics.outcome(outcomeAbandoned)
	w.cfg.Logger.WithFields(logrus.Fields{"client_id": l.ClientID, "attempts": l.Attempts, "why": why}).Error("back-channel logout abandoned")
	w.audit(ctx, "backchannel_logout.abandoned", "failure", l, map[string]string{"why": why, "attempts": strconv.Itoa(l.Attempts)})
}

func (w *Worker) audit(ctx context.Context, event, outcome string, l *storage.BackchannelLogout, details map[string]string) {
	details["jti"] = l.JTI
	details["logout_reason"] = l.Reason
	w.cfg.Audit(context.WithoutCancel(ctx), storage.AuditEvent{
		Time: w.cfg.Now().UTC(), Event: event, Actor: "bulwark", ClientID: l.ClientID, Subject: l.Subject, Outcome: outcome, Details: details,
	})
}
