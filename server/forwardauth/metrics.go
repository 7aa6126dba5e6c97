package forwardauth

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Denial reasons: the bounded label values of the denial counter.
const (
	reasonNoCredentials     = "no_credentials"
	reasonMalformed         = "malformed_request"
	reasonPathRefused       = "path_refused"
	reasonNoRule            = "no_rule"
	reasonInvalidToken      = "invalid_token"
	reasonExpired           = "expired"
	reasonRevoked           = "revoked"
	reasonWrongAudience     = "wrong_audience"
	reasonInsufficientScope = "insufficient_scope"
	reasonRateLimited       = "rate_limited"
	reasonDPoP              = "dpop_unsupported"
	reasonDPoPInvalid       = "invalid_dpop_proof"
	reasonDPoPNonce         = "use_dpop_nonce"
	reasonDPoPBinding       = "dpop_binding"
	reasonAPIKeyInvalid     = "api_key_invalid"
	reasonAPIKeyRevoked     = "api_key_revoked"
	reasonAPIKeyExpired     = "api_key_expired"
	reasonUnavailable       = "unavailable"
)

// Metrics are the forward-auth collectors.
type Metrics struct {
	allowed       *prometheus.CounterVec
	denied        *prometheus.CounterVec
	lookups       *prometheus.CounterVec
	reloads       *prometheus.CounterVec
	denyListSize  prometheus.Gauge
	auditsSampled prometheus.Counter
}

// NewMetrics registers the collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		allowed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_forward_auth_allowed_total", Help: "Forward-auth checks answered 200, by credential type.",
		}, []string{"token_type"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_forward_auth_denied_total", Help: "Forward-auth checks denied, by reason.",
		}, []string{"reason"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_forward_auth_revocation_lookups_total",
			Help: "Store lookups made because the in-memory deny list could not vouch for a token (startup, lost notifications, overflow), by result.",
		}, []string{"result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_forward_auth_rules_reloads_total", Help: "Rules file reloads, by result (ok, invalid).",
		}, []string{"result"}),
		denyListSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulwark_forward_auth_deny_list_entries", Help: "Revoked, unexpired access tokens held in memory.",
		}),
		auditsSampled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_forward_auth_denial_audits_total", Help: "Denials recorded as audit events (sampled).",
		}),
	}
	reg.MustRegister(m.allowed, m.denied, m.lookups, m.reloads, m.denyListSize, m.auditsSampled)
	for _, r := range []string{reasonNoCredentials, reasonMalformed, reasonPathRefused, reasonNoRule, reasonInvalidToken,
		reasonExpired, reasonRevoked, reasonWrongAudience, reasonInsufficientScope, reasonRateLimited, reasonDPoP, reasonDPoPInvalid, reasonDPoPNonce, reasonDPoPBinding,
		reasonAPIKeyInvalid, reasonAPIKeyRevoked, reasonAPIKeyExpired, reasonUnavailable} {
		m.denied.WithLabelValues(r)
	}
	for _, r := range []string{"revoked", "valid", "error"} {
		m.lookups.WithLabelValues(r)
	}
	return m
}

// Attach wires the deny list and the rules into the collectors.
func (m *Metrics) Attach(d *Revocations, r *Rules) {
	if d != nil {
		d.onLookup = func(result string) { m.lookups.WithLabelValues(result).Inc() }
		d.onSize = func(n int) { m.denyListSize.Set(float64(n)) }
	}
	if r != nil {
		r.onReload = func(ok bool) {
			if ok {
				m.reloads.WithLabelValues("ok").Inc()
			} else {
				m.reloads.WithLabelValues("invalid").Inc()
			}
		}
	}
}
