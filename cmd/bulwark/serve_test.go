package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/server/metrics"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// serve retries an unreachable database with a log line per attempt, then
// gives up with the database error after --database-wait.
func TestServeWaitsForDatabase(t *testing.T) {
	unsetConfigEnv(t)
	var out, errs bytes.Buffer
	code := execute(context.Background(), []string{"serve", "--database-url", unreachableDSN, "--secret", secretA,
		"--issuer", "http://127.0.0.1:4444", "--database-wait", "5s", "--log-format", "text"}, strings.NewReader(""), &out, &errs)
	if code != exitFailed || !strings.Contains(errs.String(), "open database") {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if n := strings.Count(errs.String(), "database unreachable; retrying"); n < 2 {
		t.Fatalf("%d retry log lines, want at least 2:\n%s", n, errs.String())
	}
	if !strings.Contains(errs.String(), "attempt=1") || !strings.Contains(errs.String(), "attempt=2") {
		t.Fatalf("attempts not numbered:\n%s", errs.String())
	}
}

// Sign-in outcomes and failed audit writes are counted from the audit
// stream.
func TestAuditMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	obs := auditMetrics(m)
	obs(&storage.AuditEvent{Event: "oauth.login", Outcome: "failure"}, nil)
	obs(&storage.AuditEvent{Event: "console.login", Outcome: "success"}, nil)
	obs(&storage.AuditEvent{Event: "client.created", Outcome: "success"}, storage.ErrUnavailable)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"bulwark_audit_write_failures_total":                    1,
		"bulwark_signins_total,outcome=failure,surface=login":   1,
		"bulwark_signins_total,outcome=success,surface=console": 1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}

// TestTuneGCRespectsGOGC: the server's GC target applies only when the
// operator set no GOGC.
func TestTuneGCRespectsGOGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	log := logrus.New()
	log.SetOutput(io.Discard)

	t.Setenv("GOGC", "150") // restored after the test
	tuneGC(log)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC set: GC percent = %d, want it left at 100", got)
	}
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	tuneGC(log)
	if got := debug.SetGCPercent(100); got != defaultGOGC {
		t.Fatalf("GOGC unset: GC percent = %d, want %d", got, defaultGOGC)
	}
}
