package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario names, in the order Run executes them by default.
const (
	ClientCredentials = "client_credentials"
	IntrospectJWT     = "introspect_jwt"
	IntrospectAPIKey  = "introspect_apikey"
	JWKS              = "jwks"
	Discovery         = "discovery"
	AuthCodeFlow      = "authcode_flow"
	Refresh           = "refresh"
	TokenExchange     = "token_exchange"
	// The forward-auth scenarios need a server started with a rules file
	// that lets a token with api:read (and the svc client's API key with
	// introspect) through ForwardAuthURI; they run only when asked for.
	ForwardAuthJWT    = "forward_auth_jwt"
	ForwardAuthAPIKey = "forward_auth_apikey" // #nosec G101 -- a scenario name, not a credential
)

// AllScenarios lists the scenarios a run without --scenarios drives: every
// one that needs nothing but a running server.
var AllScenarios = []string{ClientCredentials, IntrospectJWT, IntrospectAPIKey, JWKS, Discovery, AuthCodeFlow, Refresh, TokenExchange}

// KnownScenarios lists every scenario Run knows.
var KnownScenarios = append(slices.Clone(AllScenarios), ForwardAuthJWT, ForwardAuthAPIKey)

// Options configure one run.
type Options struct {
	// PublicURL is the server's public base URL (its issuer).
	PublicURL string
	// AdminURL is the admin listener's base URL; /metrics is read there.
	AdminURL string
	// AdminKey is an admin API key holding admin:clients:write,
	// admin:users, admin:apikeys and introspect (the scopes of what it
	// creates).
	AdminKey string
	// Scenarios to run, in order; empty runs AllScenarios.
	Scenarios []string
	// Concurrency is the number of concurrent keep-alive clients.
	Concurrency int
	// Duration bounds each scenario's measured phase.
	Duration time.Duration
	// MaxRequests caps each scenario's operations (0: no cap). A run with
	// a cap completes when the cap is reached or Duration ends.
	MaxRequests int64
	// Progress is the interval between progress lines (0: one second).
	Progress time.Duration
	// Timeout bounds every single HTTP request (0: 30 s).
	Timeout time.Duration
	// ForwardAuthURL is the forward-auth endpoint (default: PublicURL +
	// /forward-auth); ForwardAuthURI the X-Forwarded-Uri each check names
	// (default /bench/resource).
	ForwardAuthURL, ForwardAuthURI string
	// WebIDTokenAlg is the id_token_signed_response_alg the seeded web
	// client registers (the ID tokens of authcode_flow and refresh); ""
	// registers none, so the server's --id-token-alg signs them.
	WebIDTokenAlg string
}

func (o *Options) normalize() error {
	var problems []error
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	o.AdminURL = strings.TrimRight(o.AdminURL, "/")
	if o.PublicURL == "" {
		problems = append(problems, errors.New("the public URL is required"))
	}
	if o.AdminURL == "" {
		problems = append(problems, errors.New("the admin URL is required"))
	}
	if o.AdminKey == "" {
		problems = append(problems, errors.New("an admin API key is required"))
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = AllScenarios
	}
	for _, s := range o.Scenarios {
		if !slices.Contains(KnownScenarios, s) {
			problems = append(problems, fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(KnownScenarios, ", ")))
		}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.ForwardAuthURL == "" {
		o.ForwardAuthURL = o.PublicURL + "/forward-auth"
	}
	if o.ForwardAuthURI == "" {
		o.ForwardAuthURI = "/bench/resource"
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.MaxRequests < 0 {
		problems = append(problems, errors.New("the request cap cannot be negative"))
	}
	if o.Progress <= 0 {
		o.Progress = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	return errors.Join(problems...)
}

// Latency is a distribution summary in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// ScenarioResult is one scenario's figures. An operation is one request,
// except authcode_flow, where it is a whole flow of three requests.
type ScenarioResult struct {
	Name string `json:"name"`
	// Operations completed (successful or not) inside the measured phase.
	Operations int64 `json:"operations"`
	// HTTPRequests is the number of HTTP requests those operations made.
	HTTPRequests int64 `json:"http_requests"`
	// Errors counts failed operations by the status that failed them
	// ("transport" for connection errors, "unexpected" for a 2xx whose
	// body was wrong).
	Errors  map[string]int64 `json:"errors"`
	Seconds float64          `json:"seconds"`
	// PerSecond is successful operations per second.
	PerSecond float64 `json:"per_second"`
	Latency   Latency `json:"latency"`
	// ServerCPUSeconds is the server's process_cpu_seconds_total delta over
	// the measured phase; PerThousand divides it by HTTP requests / 1000.
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	CPUPerThousand   float64 `json:"server_cpu_seconds_per_1000_requests"`
	// DBAcquires is the server's pool acquisitions over the measured phase
	// (absent for the memory store): 0 for JWKS and discovery.
	DBAcquires *float64 `json:"db_acquires,omitempty"`
	// Completed says the scenario was set up and ran to its cap or its
	// duration; false with Error set when it had to stop.
	Completed bool   `json:"completed"`
	Error     string `json:"error,omitempty"`
}

// Result is a whole run.
type Result struct {
	PublicURL   string           `json:"public_url"`
	Concurrency int              `json:"concurrency"`
	Duration    string           `json:"duration"`
	MaxRequests int64            `json:"max_requests"`
	Started     time.Time        `json:"started"`
	ClientCPUs  int              `json:"load_generator_gomaxprocs"`
	Scenarios   []ScenarioResult `json:"scenarios"`

	// WebIDTokenAlg is what the web client registered ("" for none: the
	// server's default).
	WebIDTokenAlg string `json:"web_client_id_token_alg"`
}

// Run seeds the server, runs each scenario in turn and prints a progress
// line per interval and a summary table to w. A scenario that cannot be
// set up is reported (Completed false) and the run goes on with the next.
// Run fails only for bad options, a failed seeding, or ctx ending.
func Run(ctx context.Context, o Options, w io.Writer) (*Result, error) {
	if err := o.normalize(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	transport := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        o.Concurrency * 2,
		MaxIdleConnsPerHost: o.Concurrency * 2,
		IdleConnTimeout:     90 * time.Second,
	}
	defer transport.CloseIdleConnections()
	e := &env{opts: o, transport: transport, api: &http.Client{Transport: transport, Timeout: o.Timeout}}
	// Clean up whatever was created, even when seeding stopped half-way.
	defer e.cleanup(context.WithoutCancel(ctx), w)
	if err := e.seed(ctx); err != nil {
		return nil, fmt.Errorf("bench: seed: %w", err)
	}

	res := &Result{PublicURL: o.PublicURL, Concurrency: o.Concurrency, Duration: o.Duration.String(),
		MaxRequests: o.MaxRequests, Started: time.Now().UTC(), ClientCPUs: runtime.GOMAXPROCS(0), WebIDTokenAlg: o.WebIDTokenAlg}
	for _, name := range o.Scenarios {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		sr := e.runScenario(ctx, name, w)
		res.Scenarios = append(res.Scenarios, sr)
	}
	writeTable(w, res)
	return res, nil
}

// runScenario sets up one worker state per client (outside the clock),
// then runs the workers together until the cap or the duration.
func (e *env) runScenario(ctx context.Context, name string, w io.Writer) ScenarioResult {
	sr := ScenarioResult{Name: name, Errors: map[string]int64{}}
	sc := scenarios[name]
	ops := make([]op, e.opts.Concurrency)
	for i := range ops {
		o, err := sc(ctx, e, i)
		if err != nil {
			sr.Error = fmt.Sprintf("setup: %v", err)
			fmt.Fprintf(w, "%-18s setup failed: %v\n", name, err)
			return sr
		}
		ops[i] = o
	}
	before, err := e.scrape(ctx)
	if err != nil {
		sr.Error = fmt.Sprintf("metrics: %v", err)
		return sr
	}

	runCtx, cancel := context.WithTimeout(ctx, e.opts.Duration)
	defer cancel()
	var (
		issued, done, failed, httpReqs atomic.Int64
		mu                             sync.Mutex
		latencies                      []time.Duration
		errs                           = map[string]int64{}
		wg                             sync.WaitGroup
	)
	start := time.Now()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(e.opts.Progress)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				el := time.Since(start).Seconds()
				fmt.Fprintf(w, "%-18s %5.1fs %9d ops %9.0f ops/s %6d errors\n", name, el, done.Load(), float64(done.Load())/el, failed.Load())
			}
		}
	}()
	for _, o := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			localErrs := map[string]int64{}
			for runCtx.Err() == nil {
				if e.opts.MaxRequests > 0 && issued.Add(1) > e.opts.MaxRequests {
					break
				}
				t0 := time.Now()
				n, err := o(runCtx)
				el := time.Since(t0)
				if runCtx.Err() != nil && err != nil {
					// Cut off by the end of the measured phase: neither a
					// success nor a failure of the server.
					break
				}
				httpReqs.Add(int64(n))
				done.Add(1)
				local = append(local, el)
				if err != nil {
					failed.Add(1)
					localErrs[errorKey(err)]++
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			for k, v := range localErrs {
				errs[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	<-progressDone

	after, err := e.scrape(ctx)
	if err != nil {
		sr.Error = fmt.Sprintf("metrics: %v", err)
		return sr
	}
	sr.Operations, sr.HTTPRequests, sr.Errors = done.Load(), httpReqs.Load(), errs
	sr.Seconds = elapsed.Seconds()
	if sr.Seconds > 0 {
		sr.PerSecond = float64(sr.Operations-failed.Load()) / sr.Seconds
	}
	sr.Latency = summarize(latencies)
	sr.ServerCPUSeconds = after.cpu - before.cpu
	if sr.HTTPRequests > 0 {
		sr.CPUPerThousand = sr.ServerCPUSeconds / float64(sr.HTTPRequests) * 1000
	}
	if before.hasAcquires && after.hasAcquires {
		d := after.acquires - before.acquires
		sr.DBAcquires = &d
	}
	sr.Completed = ctx.Err() == nil
	return sr
}
