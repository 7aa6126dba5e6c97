package backchannel

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of one delivery attempt: the bounded label values of the
// deliveries counter.
const (
	outcomeDelivered = "delivered"
	outcomeFailed    = "failed"
	outcomeAbandoned = "abandoned"
	outcomeDeferred  = "deferred"
)

// Failure reasons: the bounded label values of the failures counter.
const (
	reasonForbiddenAddress = "forbidden_address"
	reasonTimeout          = "timeout"
	reasonConnection       = "connection_failed"
	reasonStatus           = "bad_status"
	reasonSign             = "sign_failed"
	reasonRequest          = "bad_request_uri"
)

// Metrics are the back-channel logout collectors.
type Metrics struct {
	deliveries *prometheus.CounterVec
	failures   *prometheus.CounterVec
}

// NewMetrics registers the collectors on reg. pending, when not nil,
// reports the number of queued logouts (bulwark_backchannel_logouts_pending)
// at scrape time.
func NewMetrics(reg prometheus.Registerer, pending func(context.Context) (int64, error)) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_backchannel_logout_deliveries_total",
			Help: "Back-channel logout delivery attempts by outcome (delivered, failed, abandoned after the maximum age or for want of a URI, deferred by the per-client rate limit).",
		}, []string{"outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_backchannel_logout_failures_total",
			Help: "Failed back-channel logout deliveries by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.deliveries, m.failures)
	for _, o := range []string{outcomeDelivered, outcomeFailed, outcomeAbandoned, outcomeDeferred} {
		m.deliveries.WithLabelValues(o)
	}
	for _, r := range []string{reasonForbiddenAddress, reasonTimeout, reasonConnection, reasonStatus, reasonSign, reasonRequest} {
		m.failures.WithLabelValues(r)
	}
	if pending != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bulwark_backchannel_logouts_pending",
			Help: "Logout tokens queued for delivery (all replicas; -1 when the store cannot be read).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := pending(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	return m
}

func (m *Metrics) outcome(o string) {
	if m != nil {
		m.deliveries.WithLabelValues(o).Inc()
	}
}

func (m *Metrics) failure(reason string) {
	if m != nil {
		m.deliveries.WithLabelValues(outcomeFailed).Inc()
		m.failures.WithLabelValues(reason).Inc()
	}
}
