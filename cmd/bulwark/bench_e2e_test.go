package main

// `bulwark bench` end to end: the load tool seeds its own identities
// through the admin API of a real server on Postgres and runs every
// scenario for a bounded number of operations. It asserts correctness
// only — every operation succeeded, every scenario ran to its cap, the
// server's CPU counter was read — never a time or a rate.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/cmd/bulwark/internal/loadgen"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

func TestBenchRunsEveryScenarioWithoutErrors(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("rules:\n  - name: bench\n    path: /bench/**\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startE2E(t, dsn, func(c *config) {
		// The tool drives one client from one address, as a load run does.
		c.RateLimits, c.ClientRateLimits = nil, nil
		c.ForwardAuthRules = rules
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = s.app.forwardAuth.run(ctx) }()
	adminKey := cliCreateKey(t, dsn, "--name", "bench admin", "--owner-type", "service", "--owner-id", "bench",
		"--scopes", "admin:clients:write,admin:users,admin:apikeys,introspect")

	const perScenario = 200
	var progress bytes.Buffer
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		PublicURL: s.issuer, AdminURL: s.adminURL, AdminKey: adminKey,
		Scenarios: loadgen.KnownScenarios, Concurrency: 8, MaxRequests: perScenario, WebIDTokenAlg: "ES256",
		// A generous bound that a healthy run never reaches; the cap ends
		// each scenario.
		Duration: 5 * time.Minute, Progress: 500 * time.Millisecond,
	}, &progress)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, progress.String())
	}
	if len(res.Scenarios) != len(loadgen.KnownScenarios) {
		t.Fatalf("ran %d scenarios, want %d", len(res.Scenarios), len(loadgen.KnownScenarios))
	}
	for i, sr := range res.Scenarios {
		if sr.Name != loadgen.KnownScenarios[i] {
			t.Errorf("scenario %d is %q, want %q", i, sr.Name, loadgen.KnownScenarios[i])
		}
		if !sr.Completed || sr.Error != "" {
			t.Errorf("%s did not complete: %s", sr.Name, sr.Error)
		}
		if sr.Operations != perScenario {
			t.Errorf("%s: %d operations, want exactly the cap %d", sr.Name, sr.Operations, perScenario)
		}
		if len(sr.Errors) != 0 {
			t.Errorf("%s: errors %v", sr.Name, sr.Errors)
		}
		wantHTTP := int64(perScenario)
		if sr.Name == loadgen.AuthCodeFlow {
			wantHTTP = 3 * perScenario // authorize, code exchange, refresh
		}
		if sr.HTTPRequests != wantHTTP {
			t.Errorf("%s: %d HTTP requests, want %d", sr.Name, sr.HTTPRequests, wantHTTP)
		}
		if sr.ServerCPUSeconds <= 0 || sr.Latency.Max <= 0 || sr.Latency.P50 > sr.Latency.Max {
			t.Errorf("%s: implausible figures: cpu %v latency %+v", sr.Name, sr.ServerCPUSeconds, sr.Latency)
		}
		if sr.DBAcquires == nil {
			t.Errorf("%s: the Postgres pool's acquire counter was not read", sr.Name)
		}
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
	t.Logf("progress and summary:\n%s", progress.String())

	// Open loop with a warm-up: the same correctness, plus the service
	// latency and what the warm-up did. Refresh is here because a warm-up
	// that cancelled a rotation in flight left its client with a used
	// refresh token and every later refresh of that client failed.
	progress.Reset()
	res, err = loadgen.Run(context.Background(), loadgen.Options{
		PublicURL: s.issuer, AdminURL: s.adminURL, AdminKey: adminKey,
		Scenarios: []string{loadgen.ClientCredentials, loadgen.IntrospectJWT, loadgen.Refresh}, Concurrency: 8, MaxRequests: 100,
		Rate: 400, Warmup: 300 * time.Millisecond, Duration: 5 * time.Minute,
	}, &progress)
	if err != nil {
		t.Fatalf("bench --rate: %v\n%s", err, progress.String())
	}
	for _, sr := range res.Scenarios {
		if !sr.Completed || sr.Operations != 100 || len(sr.Errors) != 0 {
			t.Errorf("%s at a rate: completed %v, %d operations, errors %v", sr.Name, sr.Completed, sr.Operations, sr.Errors)
		}
		if sr.OfferedRate != 400 || sr.ServiceLatency == nil || sr.ServiceLatency.Max <= 0 {
			t.Errorf("%s: offered rate %v, service latency %+v", sr.Name, sr.OfferedRate, sr.ServiceLatency)
		}
		if sr.Warmup == nil || sr.Warmup.Operations == 0 || len(sr.Warmup.Errors) != 0 {
			t.Errorf("%s: warm-up %+v", sr.Name, sr.Warmup)
		}
	}
	if res.Rate != 400 || res.Warmup != "300ms" {
		t.Errorf("result rate %v warm-up %q", res.Rate, res.Warmup)
	}
}

// TestPProfIsOffByDefault: the profiles exist on the admin listener only
// when --pprof is given, and never on the public listener.
func TestPProfIsOffByDefault(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	get := func(u string) int {
		t.Helper()
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res.StatusCode
	}
	off := startE2E(t, dsn)
	if st := get(off.adminURL + "/debug/pprof/goroutine?debug=1"); st != http.StatusNotFound {
		t.Fatalf("pprof without --pprof: %d, want 404", st)
	}
	on := startE2E(t, dsn, func(c *config) { c.PProf = true })
	if st := get(on.adminURL + "/debug/pprof/goroutine?debug=1"); st != http.StatusOK {
		t.Fatalf("pprof with --pprof on the admin listener: %d, want 200", st)
	}
	if st := get(on.issuer + "/debug/pprof/goroutine?debug=1"); st != http.StatusNotFound {
		t.Fatalf("pprof on the public listener: %d, want 404", st)
	}
}
