package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-auth/bulwark/cmd/bulwark/internal/loadgen"
)

// benchCmd runs the load tool against a running server (see
// docs/performance.md). The admin key comes from BULWARK_BENCH_ADMIN_KEY
// rather than a flag, so it does not show in the process list.
func (c *cli) benchCmd() *cobra.Command {
	var (
		o                  loadgen.Options
		scenarios, jsonOut string
		cpuProfile         string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a running server over HTTP and report throughput and latency",
		Long: `Seed clients, a user and API keys on a running server through its admin
API (key from BULWARK_BENCH_ADMIN_KEY, scopes admin:clients:write admin:users
admin:apikeys introspect), drive each scenario with N concurrent keep-alive
clients after an unmeasured warm-up (closed loop, or open loop at --rate),
print req/s, p50/p90/p99/max, errors by status and the server's CPU per
1,000 requests, remove what it seeded, and write the JSON result.`,
		Example: `  BULWARK_BENCH_ADMIN_KEY=bwk_… bulwark bench --scenarios client_credentials,jwks --concurrency 64 --duration 20s`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.AdminKey = os.Getenv("BULWARK_BENCH_ADMIN_KEY")
			for _, s := range strings.Split(scenarios, ",") {
				if s = strings.TrimSpace(s); s != "" {
					o.Scenarios = append(o.Scenarios, s)
				}
			}
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			res, err := loadgen.Run(cmd.Context(), o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
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
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.PublicURL, "public-url", "http://127.0.0.1:4444", "the server's public base URL (its issuer)")
	f.StringVar(&o.AdminURL, "admin-url", "http://127.0.0.1:4445", "the admin listener's base URL (admin API and /metrics)")
	f.StringVar(&scenarios, "scenarios", strings.Join(loadgen.AllScenarios, ","), "comma-separated scenarios to run, in order (also known: "+strings.Join(loadgen.KnownScenarios[len(loadgen.AllScenarios):], ", ")+")")
	f.StringVar(&o.ForwardAuthURL, "forward-auth-url", "", "the forward-auth endpoint of the forward_auth_* scenarios (default: <public-url>/forward-auth)")
	f.StringVar(&o.ForwardAuthURI, "forward-auth-uri", "/bench/resource", "the X-Forwarded-Uri each forward-auth check names; the server's rules must let api:read (JWT) and introspect (the API key) through it")
	f.IntVar(&o.Concurrency, "concurrency", 64, "concurrent keep-alive clients")
	f.DurationVar(&o.Duration, "duration", 20*time.Second, "measured time per scenario")
	f.DurationVar(&o.Warmup, "warmup", time.Second, "unmeasured closed-loop time before each scenario (connections, first verifications, pool growth); 0 measures from a cold start")
	f.Int64Var(&o.MaxRequests, "requests", 0, "cap on operations per scenario (0: none)")
	f.Float64Var(&o.Rate, "rate", 0, "open loop: operations per second, due on a fixed schedule whether or not the server keeps up, latency counted from when each was due; 0 runs closed loop (each client sends its next request when the last one is answered)")
	f.StringVar(&o.WebIDTokenAlg, "client-id-token-alg", "ES256", `the id_token_signed_response_alg of the seeded web client (authcode_flow, refresh): ES256, EdDSA or RS256; "" registers none (the server's --id-token-alg)`)
	f.StringVar(&cpuProfile, "cpuprofile", "", "write the load tool's own CPU profile to this file (go tool pprof), to see what the generator costs")
	f.StringVar(&jsonOut, "json", "-", "where to write the JSON result: a file, or - for standard output")
	return cmd
}

// startCPUProfile profiles this process (the load tool, not the server)
// into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path) // #nosec G304 -- the operator names the profile file
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
