package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
)

// Metrics holds Bulwark's collectors. Its methods are safe for concurrent
// use and cheap (one map lookup and an atomic add).
type Metrics struct {
	gatherer prometheus.Gatherer

	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	tokensIssued *prometheus.CounterVec
	oauthErrors  *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
	blocked      *prometheus.CounterVec
	placed       *prometheus.CounterVec
	alerts       *prometheus.CounterVec
	forwarded    prometheus.Counter
	buildInfo    *prometheus.GaugeVec
	auditFailed  prometheus.Counter
	signIns      *prometheus.CounterVec
	gauges       *funcCollector
}

// DBStats is the database pool snapshot exported as gauges; cmd/bulwark
// maps pgxpool.Stat onto it so this package does not depend on pgx.
type DBStats struct {
	TotalConns, IdleConns, AcquiredConns, MaxConns int32
	// AcquireCount and EmptyAcquireCount are cumulative; EmptyAcquireCount
	// counts acquires that had to wait for a connection.
	AcquireCount, EmptyAcquireCount int64
	AcquireDuration                 time.Duration
}

// New creates the collectors and registers them with reg (MustRegister:
// registering twice is a programming error caught at start-up). Handler
// serves reg when it is also a Gatherer (a *prometheus.Registry), else the
// default gatherer. Go runtime and process collectors are not added here;
// register collectors.NewGoCollector() and NewProcessCollector() on a
// fresh registry if wanted.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_http_requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulwark_http_request_duration_seconds",
			Help:    "HTTP request latency by route template and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_tokens_issued_total",
			Help: "Access tokens issued, by grant type.",
		}, []string{"grant"}),
		oauthErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_oauth_errors_total",
			Help: "OAuth error responses, by RFC 6749 error code.",
		}, []string{"error"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_rate_limited_total",
			Help: "Requests refused by rate limiting, by endpoint class.",
		}, []string{"class"}),
		blocked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_blocked_requests_total",
			Help: "Requests refused because their source is blocked, by block kind.",
		}, []string{"kind"}),
		placed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_blocks_placed_total",
			Help: "Blocks placed by anomaly thresholds, by block kind (ip, client) and signal.",
		}, []string{"kind", "signal"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_anomaly_alerts_total",
			Help: "Anomaly thresholds crossed that alert without blocking, by source kind and signal.",
		}, []string{"kind", "signal"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_untrusted_forwarded_requests_total",
			Help: "Requests carrying X-Forwarded-For or Forwarded from a peer not in --trusted-proxies (the header was ignored).",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_build_info",
			Help: "Always 1; the labels say which build runs.",
		}, []string{"version", "commit"}),
		auditFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_audit_write_failures_total",
			Help: "Audit events that could not be stored (they were still logged).",
		}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_signins_total",
			Help: "Sign-in attempts by surface (login page, console) and outcome.",
		}, []string{"surface", "outcome"}),
		gauges: newFuncCollector(),
	}
	reg.MustRegister(m.requests, m.latency, m.tokensIssued, m.oauthErrors, m.rateLimited, m.blocked,
		m.placed, m.alerts, m.forwarded, m.buildInfo, m.auditFailed, m.signIns, m.gauges)
	if g, ok := reg.(prometheus.Gatherer); ok {
		m.gatherer = g
	} else {
		m.gatherer = prometheus.DefaultGatherer
	}
	return m
}

// Handler serves the metrics in the Prometheus exposition format. Mount it
// on the admin listener only.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}

// RouteTemplate returns the path template of the matched route
// ("/admin/v1/clients/{id}") as the pipeline recorded it in reqinfo, or
// "unmatched". It is the default for Instrument's route function; call it
// after the handler ran.
func RouteTemplate(r *http.Request) string {
	if tpl := reqinfo.From(r.Context()).Route(); tpl != "" {
		return tpl
	}
	// Used as plain router middleware, outside the server's pipeline.
	if rt := mux.CurrentRoute(r); rt != nil {
		if tpl, err := rt.GetPathTemplate(); err == nil {
			return tpl
		}
	}
	return "unmatched"
}

// Instrument counts requests and observes latency by route, method and
// status. route must return a template, never the raw path (which carries
// ids); nil means RouteTemplate. Wrap the whole router with it (server
// Config.PublicMiddleware), so 404s count as "unmatched".
func (m *Metrics) Instrument(route func(*http.Request) string) mux.MiddlewareFunc {
	if route == nil {
		route = RouteTemplate
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(sw, r)
			rt, method := route(r), normMethod(r.Method)
			m.requests.WithLabelValues(rt, method, strconv.Itoa(sw.status)).Inc()
			m.latency.WithLabelValues(rt, method).Observe(time.Since(start).Seconds())
		})
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and friends.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func normMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// Label value sets. Anything else is counted as "other" so a buggy or
// hostile caller cannot create unbounded series.
var (
	grants = set("authorization_code", "client_credentials", "refresh_token",
		"urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:device_code",
		"urn:ietf:params:oauth:grant-type:token-exchange", "implicit", "password")
	oauthErrs = set("invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
		"unsupported_grant_type", "invalid_scope", "access_denied", "unsupported_response_type",
		"server_error", "temporarily_unavailable", "invalid_token", "insufficient_scope",
		"invalid_request_uri", "invalid_request_object", "login_required", "consent_required",
		"interaction_required", "request_unauthorized", "request_forbidden", "rate_limited",
		"invalid_dpop_proof", "use_dpop_nonce", "unsupported_token_type", "invalid_target", "not_found", "method_not_allowed")
	classes = set("token", "introspect", "revoke", "par", "login", "admin", "userinfo")
	kinds   = set("ip", "client")
	signals = set("failed_login", "invalid_client", "invalid_token", "refresh_reuse")
)

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

func bounded(allowed map[string]bool, v string) string {
	if allowed[v] {
		return v
	}
	return "other"
}

// TokensIssued counts one access token issued with grant type grant.
func (m *Metrics) TokensIssued(grant string) {
	m.tokensIssued.WithLabelValues(bounded(grants, grant)).Inc()
}

// OAuthError counts one OAuth error response with error code errType.
func (m *Metrics) OAuthError(errType string) {
	m.oauthErrors.WithLabelValues(bounded(oauthErrs, errType)).Inc()
}

// RateLimited counts one request refused by the limiter for class (wire it
// into protect.RateConfig.OnBlock).
func (m *Metrics) RateLimited(class string) {
	m.rateLimited.WithLabelValues(bounded(classes, class)).Inc()
}

// Blocked counts one request refused because its source is blocked (wire
// it into protect.DetectorConfig.OnBlock).
func (m *Metrics) Blocked(kind string) {
	m.blocked.WithLabelValues(bounded(kinds, kind)).Inc()
}

// BlockPlaced counts a block placed by an anomaly threshold.
func (m *Metrics) BlockPlaced(kind, signal string) {
	m.placed.WithLabelValues(bounded(kinds, kind), bounded(signals, signal)).Inc()
}

// AnomalyAlert counts a crossed alert-only threshold.
func (m *Metrics) AnomalyAlert(kind, signal string) {
	m.alerts.WithLabelValues(bounded(kinds, kind), bounded(signals, signal)).Inc()
}

// UntrustedForwarded counts a forwarded header ignored because the peer is
// not a trusted proxy.
func (m *Metrics) UntrustedForwarded() { m.forwarded.Inc() }

// SetBuildInfo publishes the running version and commit.
func (m *Metrics) SetBuildInfo(version, commit string) {
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version, commit).Set(1)
}

// AuditWriteFailed counts one audit event the store refused.
func (m *Metrics) AuditWriteFailed() { m.auditFailed.Inc() }

// SignIn counts one sign-in attempt on surface ("login" page or "console")
// with outcome (success, failure, denied; anything else is "other").
func (m *Metrics) SignIn(surface, outcome string) {
	if surface != "login" && surface != "console" {
		surface = "other"
	}
	switch outcome {
	case "success", "failure", "denied":
	default:
		outcome = "other"
	}
	m.signIns.WithLabelValues(surface, outcome).Inc()
}

// KeyHealth is the signing key ring's state at scrape time.
type KeyHealth struct {
	// Usable says per algorithm whether an active key can sign.
	Usable map[string]bool
	// BlockedActivations counts scheduled activations refused because the
	// next key did not open with the master secret (alert on increase).
	BlockedActivations uint64
}

// SetKeyHealth installs the function read at every scrape for the key
// ring's health. nil removes it.
func (m *Metrics) SetKeyHealth(f func() KeyHealth) {
	m.gauges.mu.Lock()
	m.gauges.keyHealth = f
	m.gauges.mu.Unlock()
}

// SetDBStats installs the function read at every scrape for the pool
// gauges (pass a closure over pgxpool.Pool.Stat). nil removes it.
func (m *Metrics) SetDBStats(f func() DBStats) {
	m.gauges.mu.Lock()
	m.gauges.db = f
	m.gauges.mu.Unlock()
}

// SetKeyAges installs the function read at every scrape for the age of the
// active signing key per algorithm (map alg → age). nil removes it.
func (m *Metrics) SetKeyAges(f func() map[string]time.Duration) {
	m.gauges.mu.Lock()
	m.gauges.keyAges = f
	m.gauges.mu.Unlock()
}

// funcCollector reads pool and key state at scrape time, so nothing has to
// push updates and a scrape always sees the present.
type funcCollector struct {
	mu        sync.Mutex
	db        func() DBStats
	keyAges   func() map[string]time.Duration
	keyHealth func() KeyHealth

	keyUsable, keyBlocked               *prometheus.Desc
	total, idle, acquired, maxConns     *prometheus.Desc
	acquires, emptyAcquires, acquireDur *prometheus.Desc
	keyAge                              *prometheus.Desc
}

func newFuncCollector() *funcCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &funcCollector{
		total:         d("bulwark_db_pool_total_conns", "Connections in the pool."),
		idle:          d("bulwark_db_pool_idle_conns", "Idle connections in the pool."),
		acquired:      d("bulwark_db_pool_acquired_conns", "Connections currently in use."),
		maxConns:      d("bulwark_db_pool_max_conns", "Maximum pool size."),
		acquires:      d("bulwark_db_pool_acquires_total", "Connections acquired from the pool."),
		emptyAcquires: d("bulwark_db_pool_empty_acquires_total", "Acquires that waited because the pool was empty."),
		acquireDur:    d("bulwark_db_pool_acquire_seconds_total", "Total time spent acquiring connections."),
		keyAge:        d("bulwark_signing_key_age_seconds", "Age of the active signing key, by algorithm.", "alg"),
		keyUsable:     d("bulwark_signing_key_usable", "1 when this replica can sign with the active key of the algorithm, else 0 (token requests fail).", "alg"),
		keyBlocked:    d("bulwark_signing_key_activations_blocked_total", "Scheduled key activations refused because the next key does not open with the master secret."),
	}
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.idle, c.acquired, c.maxConns, c.acquires, c.emptyAcquires, c.acquireDur, c.keyAge, c.keyUsable, c.keyBlocked} {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	db, keyAges, keyHealth := c.db, c.keyAges, c.keyHealth
	c.mu.Unlock()
	if keyHealth != nil {
		h := keyHealth()
		for alg, ok := range h.Usable {
			v := 0.0
			if ok {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.keyUsable, prometheus.GaugeValue, v, alg)
		}
		ch <- prometheus.MustNewConstMetric(c.keyBlocked, prometheus.CounterValue, float64(h.BlockedActivations))
	}
	if db != nil {
		s := db()
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
		}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
		}
		gauge(c.total, float64(s.TotalConns))
		gauge(c.idle, float64(s.IdleConns))
		gauge(c.acquired, float64(s.AcquiredConns))
		gauge(c.maxConns, float64(s.MaxConns))
		counter(c.acquires, float64(s.AcquireCount))
		counter(c.emptyAcquires, float64(s.EmptyAcquireCount))
		counter(c.acquireDur, s.AcquireDuration.Seconds())
	}
	if keyAges != nil {
		for alg, age := range keyAges() {
			ch <- prometheus.MustNewConstMetric(c.keyAge, prometheus.GaugeValue, age.Seconds(), alg)
		}
	}
}
