package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"golang.org/x/time/rate"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/server/backchannel"
	"github.com/bulwark-auth/bulwark/server/egress"
	"github.com/bulwark-auth/bulwark/storage"
)

// backchannelConfig configures the delivery of OpenID Connect Back-Channel
// Logout tokens (server/backchannel). Zero values take the package
// defaults.
type backchannelConfig struct {
	BackchannelPoll     time.Duration
	BackchannelTimeout  time.Duration
	BackchannelLease    time.Duration
	BackchannelRetryMin time.Duration
	BackchannelRetryMax time.Duration
	BackchannelMaxAge   time.Duration
	BackchannelRate     float64
	BackchannelBurst    int

	backchannelRateRaw string
}

const defaultBackchannelRate = "10:20"

func backchannelFlags(fs *pflag.FlagSet, c *backchannelConfig) {
	fs.DurationVar(&c.BackchannelPoll, "backchannel-poll-interval", envDuration("BULWARK_BACKCHANNEL_POLL_INTERVAL", backchannel.DefaultPoll), "how often each replica looks for due back-channel logouts when no notification wakes it")
	fs.DurationVar(&c.BackchannelTimeout, "backchannel-timeout", envDuration("BULWARK_BACKCHANNEL_TIMEOUT", backchannel.DefaultTimeout), "time limit of one logout token delivery")
	fs.DurationVar(&c.BackchannelLease, "backchannel-lease", envDuration("BULWARK_BACKCHANNEL_LEASE", backchannel.DefaultLease), "how long a replica holds a claimed logout; a replica that dies mid-delivery releases it after this (must exceed --backchannel-timeout)")
	fs.DurationVar(&c.BackchannelRetryMin, "backchannel-retry-min", envDuration("BULWARK_BACKCHANNEL_RETRY_MIN", backchannel.DefaultRetryMin), "wait after the first failed delivery; doubles per failure")
	fs.DurationVar(&c.BackchannelRetryMax, "backchannel-retry-max", envDuration("BULWARK_BACKCHANNEL_RETRY_MAX", backchannel.DefaultRetryMax), "longest wait between delivery attempts")
	fs.DurationVar(&c.BackchannelMaxAge, "backchannel-max-age", envDuration("BULWARK_BACKCHANNEL_MAX_AGE", backchannel.DefaultMaxAge), "a logout still undelivered this long after it was queued is abandoned (audited)")
	fs.StringVar(&c.backchannelRateRaw, "backchannel-client-rate", envOr("BULWARK_BACKCHANNEL_CLIENT_RATE", defaultBackchannelRate), "logout tokens per second:burst per client, per replica")
}

// finishBackchannel validates the back-channel settings.
func (c *backchannelConfig) finishBackchannel() []error {
	if c.backchannelRateRaw == "" {
		c.backchannelRateRaw = defaultBackchannelRate
	}
	r, b, ok := strings.Cut(c.backchannelRateRaw, ":")
	rv, err1 := strconv.ParseFloat(r, 64)
	bv, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || rv <= 0 || bv <= 0 {
		return []error{fmt.Errorf("--backchannel-client-rate %q: use rate:burst, e.g. %s", c.backchannelRateRaw, defaultBackchannelRate)}
	}
	c.BackchannelRate, c.BackchannelBurst = rv, bv
	return nil
}

// buildBackchannel assembles the delivery worker: logout tokens signed by
// the ID token signer, sent through the egress client.
func buildBackchannel(cfg config, store storage.Store, ring *keys.Ring, reg prometheus.Registerer,
	audit func(context.Context, storage.AuditEvent), now func() time.Time, log logrus.FieldLogger) (*backchannel.Worker, error) {
	opts := cfg.egressOptions()
	timeout := cfg.BackchannelTimeout
	if timeout == 0 {
		timeout = backchannel.DefaultTimeout
	}
	opts.Timeout = timeout
	return backchannel.NewWorker(backchannel.Config{
		Store: store, Signer: ring.Signer(cfg.IDTokenAlg), Signers: idTokenSigners(ring, cfg.SigningAlgs), Issuer: cfg.Issuer, HTTP: egress.New(opts),
		Metrics: backchannel.NewMetrics(reg, store.PendingLogouts),
		Audit:   audit, Now: now, Logger: log,
		Poll: cfg.BackchannelPoll, Timeout: timeout, Lease: cfg.BackchannelLease,
		RetryMin: cfg.BackchannelRetryMin, RetryMax: cfg.BackchannelRetryMax, MaxAge: cfg.BackchannelMaxAge,
		ClientRate: rate.Limit(cfg.BackchannelRate), ClientBurst: cfg.BackchannelBurst,
	})
}
