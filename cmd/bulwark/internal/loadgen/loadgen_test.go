package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := summarize(d)
	want := Latency{P50: 50, P90: 90, P99: 99, Max: 100}
	if got != want {
		t.Fatalf("summarize = %+v, want %+v", got, want)
	}
	if got := summarize(nil); got != (Latency{}) {
		t.Fatalf("empty: %+v", got)
	}
	if got := summarize([]time.Duration{3 * time.Millisecond}); got != (Latency{3, 3, 3, 3}) {
		t.Fatalf("one sample: %+v", got)
	}
}

func TestErrorKey(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&statusError{503}, "503"},
		{fmt.Errorf("wrapped: %w", &statusError{429}), "429"},
		{fmt.Errorf("%w: no token", errUnexpected), "unexpected"},
		{errors.New("connection reset"), "transport"},
	} {
		if got := errorKey(tc.err); got != tc.want {
			t.Errorf("errorKey(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestOptionsReportEveryProblem(t *testing.T) {
	o := Options{Scenarios: []string{"nope"}, MaxRequests: -1, Warmup: -time.Second, Rate: -1}
	err := o.normalize()
	for _, want := range []string{"public URL", "admin URL", "admin API key", `unknown scenario "nope"`, "cap cannot be negative",
		"warm-up cannot be negative", "rate must be between"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	o = Options{PublicURL: "http://a/", AdminURL: "http://b/", AdminKey: "k"}
	if err := o.normalize(); err != nil {
		t.Fatal(err)
	}
	if o.PublicURL != "http://a" || o.Concurrency != 64 || o.Duration != 20*time.Second || len(o.Scenarios) != len(AllScenarios) {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestScrape(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		wantErr    bool
		cpu        float64
		acquires   bool
	}{
		{"case=both counters", "# HELP x\nprocess_cpu_seconds_total 12.5\nbulwark_db_pool_acquires_total 42\n", 200, false, 12.5, true},
		{"case=memory store has no pool", "process_cpu_seconds_total 1\n", 200, false, 1, false},
		{"case=no CPU counter is an error", "go_goroutines 10\n", 200, true, 0, false},
		{"case=non-200 is an error", "", 503, true, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/metrics" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			e := &env{opts: Options{AdminURL: srv.URL}, api: srv.Client()}
			c, err := e.scrape(context.Background())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (c.cpu != tc.cpu || c.hasAcquires != tc.acquires) {
				t.Fatalf("got %+v", c)
			}
		})
	}
}

// TestSeedFailureCleansUp: when seeding stops half-way (here: the user
// cannot be created), what was created is removed and nothing is called
// for what was not.
func TestSeedFailureCleansUp(t *testing.T) {
	var calls []string
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method+" "+r.URL.Path)
		if r.Header.Get("Authorization") != "Bearer admin-key" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/admin/v1/clients":
			n++
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"client_id":"c%d","client_secret":"s"}`, n)
		case r.Method == http.MethodPost && r.URL.Path == "/admin/v1/users":
			w.WriteHeader(http.StatusBadRequest)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	defer srv.Close()
	var out strings.Builder
	_, err := Run(context.Background(), Options{PublicURL: srv.URL, AdminURL: srv.URL, AdminKey: "admin-key"}, &out)
	if err == nil || !strings.Contains(err.Error(), "seed") {
		t.Fatalf("want a seed error, got %v", err)
	}
	want := []string{
		"POST /admin/v1/clients", "POST /admin/v1/clients", "POST /admin/v1/users",
		"DELETE /admin/v1/clients/c1", "DELETE /admin/v1/clients/c2",
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
}

// TestWriteTableShowsWhatTheFiguresCountFrom: an open-loop run says so and
// prints the service latency; warm-up errors, kept out of the measured
// errors, are still printed.
func TestWriteTableShowsWhatTheFiguresCountFrom(t *testing.T) {
	var out strings.Builder
	writeTable(&out, &Result{PublicURL: "http://x", Concurrency: 4, Duration: "1s", Rate: 3000, Scenarios: []ScenarioResult{{
		Name: ClientCredentials, Operations: 10, PerSecond: 10, Errors: map[string]int64{},
		Latency: Latency{P50: 2, P90: 3, P99: 4, Max: 5}, ServiceLatency: &Latency{P50: 1, P90: 2, P99: 3, Max: 4},
		Warmup: &Warmup{Operations: 7, Errors: map[string]int64{"503": 2}},
	}}})
	for _, want := range []string{"open loop at 3000 ops/s", "from the send", "warm-up (unmeasured) errors: 503×2", "none"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	writeTable(&out, &Result{PublicURL: "http://x", Scenarios: []ScenarioResult{{Name: JWKS, Operations: 1, Errors: map[string]int64{}}}})
	if s := out.String(); !strings.Contains(s, "closed loop") || strings.Contains(s, "from the send") || strings.Contains(s, "warm-up") {
		t.Errorf("closed-loop table:\n%s", s)
	}
}
