package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics status %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestInstrumentUsesRouteTemplate(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	r := mux.NewRouter()
	r.Use(m.Instrument(nil))
	r.HandleFunc("/admin/api/clients/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}).Methods("GET")
	r.HandleFunc("/oauth2/token", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }).Methods("POST")
	srv := httptest.NewServer(r)
	defer srv.Close()

	for _, id := range []string{"client-secret-id-1", "client-2"} {
		resp, err := http.Get(srv.URL + "/admin/api/clients/" + id)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Post(srv.URL+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader("a=b"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	out := scrape(t, m)
	for _, want := range []string{
		`bulwark_http_requests_total{code="404",method="GET",route="/admin/api/clients/{id}"} 2`,
		`bulwark_http_requests_total{code="200",method="POST",route="/oauth2/token"} 1`,
		`bulwark_http_request_duration_seconds_count{method="GET",route="/admin/api/clients/{id}"} 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	for _, leak := range []string{"client-secret-id-1", "client-2"} {
		if strings.Contains(out, leak) {
			t.Errorf("raw path segment %q leaked into metrics", leak)
		}
	}
}

func TestCountersBoundLabels(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	m.TokensIssued("client_credentials")
	m.TokensIssued("client_credentials")
	m.TokensIssued("evil-grant-" + strings.Repeat("x", 10))
	m.OAuthError("invalid_client")
	m.OAuthError("whatever the attacker sent")
	m.RateLimited("token")
	m.Blocked("ip")
	m.Blocked("client")
	out := scrape(t, m)
	for _, want := range []string{
		`bulwark_tokens_issued_total{grant="client_credentials"} 2`,
		`bulwark_tokens_issued_total{grant="other"} 1`,
		`bulwark_oauth_errors_total{error="invalid_client"} 1`,
		`bulwark_oauth_errors_total{error="other"} 1`,
		`bulwark_rate_limited_total{class="token"} 1`,
		`bulwark_blocked_requests_total{kind="ip"} 1`,
		`bulwark_blocked_requests_total{kind="client"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	if strings.Contains(out, "evil-grant") || strings.Contains(out, "attacker") {
		t.Error("caller-supplied label value leaked")
	}
}

func TestGaugeFuncs(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	if out := scrape(t, m); strings.Contains(out, "bulwark_db_pool_total_conns") {
		t.Fatal("pool gauges exported before SetDBStats")
	}
	m.SetDBStats(func() DBStats {
		return DBStats{TotalConns: 7, IdleConns: 3, AcquiredConns: 4, MaxConns: 20, AcquireCount: 99, EmptyAcquireCount: 2, AcquireDuration: 1500 * time.Millisecond}
	})
	m.SetKeyAges(func() map[string]time.Duration {
		return map[string]time.Duration{"ES256": 36 * time.Hour, "EdDSA": time.Minute}
	})
	out := scrape(t, m)
	for _, want := range []string{
		"bulwark_db_pool_total_conns 7",
		"bulwark_db_pool_idle_conns 3",
		"bulwark_db_pool_acquired_conns 4",
		"bulwark_db_pool_max_conns 20",
		"bulwark_db_pool_acquires_total 99",
		"bulwark_db_pool_empty_acquires_total 2",
		"bulwark_db_pool_acquire_seconds_total 1.5",
		`bulwark_signing_key_age_seconds{alg="ES256"} 129600`,
		`bulwark_signing_key_age_seconds{alg="EdDSA"} 60`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

// Operations metrics: build info, key-ring health, audit write failures and
// sign-in outcomes (labels bounded).
func TestOperationsMetrics(t *testing.T) {
	t.Parallel()
	m := New(prometheus.NewRegistry())
	m.SetBuildInfo("v1.2.3", "abc123")
	m.SetKeyHealth(func() KeyHealth {
		return KeyHealth{Usable: map[string]bool{"ES256": false, "RS256": true}, BlockedActivations: 2}
	})
	m.AuditWriteFailed()
	m.SignIn("console", "success")
	m.SignIn("login", "failure")
	m.SignIn("login", "failure")
	m.SignIn("elsewhere", "weird")
	out := scrape(t, m)
	for _, want := range []string{
		`bulwark_build_info{commit="abc123",version="v1.2.3"} 1`,
		`bulwark_signing_key_usable{alg="ES256"} 0`,
		`bulwark_signing_key_usable{alg="RS256"} 1`,
		"bulwark_signing_key_activations_blocked_total 2",
		"bulwark_audit_write_failures_total 1",
		`bulwark_signins_total{outcome="success",surface="console"} 1`,
		`bulwark_signins_total{outcome="failure",surface="login"} 2`,
		`bulwark_signins_total{outcome="other",surface="other"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

func BenchmarkInstrument(b *testing.B) {
	m := New(prometheus.NewRegistry())
	r := mux.NewRouter()
	r.Use(m.Instrument(nil))
	r.HandleFunc("/oauth2/token", func(w http.ResponseWriter, _ *http.Request) {}).Methods("POST")
	req := httptest.NewRequest("POST", "/oauth2/token", nil)
	b.ReportAllocs()
	for b.Loop() {
		r.ServeHTTP(httptest.NewRecorder(), req)
	}
}
