package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// summarize sorts the samples and reads nearest-rank percentiles.
func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	at := func(p float64) float64 {
		i := int(p*float64(len(d))+0.999999) - 1
		i = max(0, min(i, len(d)-1))
		return ms(d[i])
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(d[len(d)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// writeTable prints the human summary.
func writeTable(w io.Writer, r *Result) {
	loop := "closed loop"
	if r.Rate > 0 {
		loop = fmt.Sprintf("open loop at %g ops/s (latency from when each operation was due)", r.Rate)
	}
	fmt.Fprintf(w, "\n%s  c=%d  duration=%s  cap=%d  %s\n", r.PublicURL, r.Concurrency, r.Duration, r.MaxRequests, loop)
	fmt.Fprintf(w, "%-18s %9s %10s %8s %8s %8s %8s %12s  %s\n", "scenario", "ops", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "cpu s/1k req", "errors")
	for _, s := range r.Scenarios {
		if s.Error != "" && s.Operations == 0 {
			fmt.Fprintf(w, "%-18s FAILED: %s\n", s.Name, s.Error)
			continue
		}
		fmt.Fprintf(w, "%-18s %9d %10.0f %8.2f %8.2f %8.2f %8.2f %12.3f  %s\n", s.Name, s.Operations, s.PerSecond,
			s.Latency.P50, s.Latency.P90, s.Latency.P99, s.Latency.Max, s.CPUPerThousand, formatErrors(s.Errors))
		if s.Warmup != nil && len(s.Warmup.Errors) > 0 {
			fmt.Fprintf(w, "%-18s warm-up (unmeasured) errors: %s\n", "", formatErrors(s.Warmup.Errors))
		}
		if l := s.ServiceLatency; l != nil {
			fmt.Fprintf(w, "%-18s %9s %10s %8.2f %8.2f %8.2f %8.2f  (from the send, without waiting for a client)\n", "", "", "", l.P50, l.P90, l.P99, l.Max)
		}
	}
}

func formatErrors(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
