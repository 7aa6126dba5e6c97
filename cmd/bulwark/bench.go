package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/cmd/bulwark/internal/loadgen"
)

// cmdBench runs the load tool against a running server (see
// docs/performance.md). The admin key comes from BULWARK_BENCH_ADMIN_KEY
// rather than a flag, so it does not show in the process list.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o loadgen.Options
	var scenarios, jsonOut string
	fs.StringVar(&o.PublicURL, "public-url", envOr("BULWARK_ISSUER", "http://127.0.0.1:4444"), "the server's public base URL (its issuer)")
	fs.StringVar(&o.AdminURL, "admin-url", envOr("BULWARK_BENCH_ADMIN_URL", "http://127.0.0.1:4445"), "the admin listener's base URL (admin API and /metrics)")
	fs.StringVar(&scenarios, "scenarios", strings.Join(loadgen.AllScenarios, ","), "comma-separated scenarios to run, in order")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "concurrent keep-alive clients")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "measured time per scenario")
	fs.Int64Var(&o.MaxRequests, "requests", 0, "cap on operations per scenario (0: none)")
	fs.StringVar(&jsonOut, "json", "-", "where to write the JSON result: a file, or - for standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.AdminKey = os.Getenv("BULWARK_BENCH_ADMIN_KEY")
	for _, s := range strings.Split(scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Scenarios = append(o.Scenarios, s)
		}
	}
	res, err := loadgen.Run(ctx, o, stderr)
	if err != nil {
		return err
	}
	out := stdout
	if jsonOut != "-" {
		f, err := os.Create(jsonOut) // #nosec G304 -- the operator names the result file
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		out = f
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		return fmt.Errorf("bench: write result: %w", err)
	}
	return nil
}
