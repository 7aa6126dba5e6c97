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
	// Warmup is unmeasured closed-loop time before each measured phase
	// (0: none; the CLI's default is 1 s).
	Warmup time.Duration
	// MaxRequests caps each scenario's operations (0: no cap). A run with
	// a cap completes when the cap is reached or Duration ends.
	MaxRequests int64
	// Rate, when above 0, runs each scenario open-loop: operations are
	// due at Rate per second whether or not the server keeps up, the
	// Concurrency clients take them in turn, and latency counts from when
	// an operation was due (see pacer). 0 runs closed-loop: each client
	// starts its next operation when the last one ends.
	Rate float64
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
	if o.Warmup < 0 {
		problems = append(problems, errors.New("the warm-up cannot be negative"))
	}
	if o.Rate < 0 || o.Rate > 1e7 {
		problems = append(problems, errors.New("the rate must be between 0 (closed loop) and 10,000,000 operations per second"))
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
	// OfferedRate is Options.Rate of an open-loop run (absent closed-loop).
	OfferedRate float64 `json:"offered_rate,omitempty"`
	// Latency counts from an operation's start (closed loop) or from when
	// it was due (open loop: waiting for a free client counts).
	Latency Latency `json:"latency"`
	// ServiceLatency, open loop only, counts from when the operation was
	// actually sent: Latency minus the time it waited for a client.
	ServiceLatency *Latency `json:"service_latency,omitempty"`
	// Warmup is what the unmeasured warm-up did (absent without one); its
	// errors are reported here and not in Errors.
	Warmup *Warmup `json:"warmup,omitempty"`
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

// Warmup is a scenario's unmeasured warm-up.
type Warmup struct {
	Operations int64            `json:"operations"`
	Errors     map[string]int64 `json:"errors"`
}

// Result is a whole run.
type Result struct {
	PublicURL   string           `json:"public_url"`
	Concurrency int              `json:"concurrency"`
	Duration    string           `json:"duration"`
	MaxRequests int64            `json:"max_requests"`
	Started     time.Time        `json:"started"`
	ClientCPUs  int              `json:"load_generator_gomaxprocs"`
	Rate        float64          `json:"rate,omitempty"`
	Warmup      string           `json:"warmup"`
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
		MaxRequests: o.MaxRequests, Rate: o.Rate, Warmup: o.Warmup.String(), Started: time.Now().UTC(), ClientCPUs: runtime.GOMAXPROCS(0), WebIDTokenAlg: o.WebIDTokenAlg}
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
// warms up, then runs the workers together until the cap or the duration.
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
	if e.opts.Warmup > 0 {
		// Unmeasured: new connections, the first (Argon2id) verification
		// of each credential, the pool growing. Without it the first
		// requests of every scenario wait together behind the cold
		// caches and the figures describe a cold start, not the server.
		stop, cancel := context.WithTimeout(ctx, e.opts.Warmup)
		warm := runPhase(ctx, stop, ops, newPacer(time.Now(), 0, 0), drain, 0, nil)
		cancel()
		sr.Warmup = &Warmup{Operations: warm.done, Errors: warm.errs}
	}
	before, err := e.scrape(ctx)
	if err != nil {
		sr.Error = fmt.Sprintf("metrics: %v", err)
		return sr
	}
	p := newPacer(time.Now(), e.opts.Rate, e.opts.MaxRequests)
	stop, cancel := context.WithTimeout(ctx, e.opts.Duration)
	defer cancel()
	ph := runPhase(ctx, stop, ops, p, cutOff, e.opts.Progress, func(el time.Duration, done, failed int64) {
		fmt.Fprintf(w, "%-18s %5.1fs %9d ops %9.0f ops/s %6d errors\n", name, el.Seconds(), done, float64(done)/el.Seconds(), failed)
	})
	after, err := e.scrape(ctx)
	if err != nil {
		sr.Error = fmt.Sprintf("metrics: %v", err)
		return sr
	}
	sr.Operations, sr.HTTPRequests, sr.Errors = ph.done, ph.httpReqs, ph.errs
	sr.Seconds = ph.elapsed.Seconds()
	if sr.Seconds > 0 {
		sr.PerSecond = float64(sr.Operations-ph.failed) / sr.Seconds
	}
	sr.Latency = summarize(ph.latencies)
	if p.open() {
		sr.OfferedRate = e.opts.Rate
		l := summarize(ph.service)
		sr.ServiceLatency = &l
	}
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

// phase is what one run of the workers measured.
type phase struct {
	done, failed, httpReqs int64
	latencies, service     []time.Duration
	errs                   map[string]int64
	elapsed                time.Duration
}

// progressFunc reports a phase's elapsed time and counts so far.
type progressFunc func(el time.Duration, done, failed int64)

// phaseEnd says what happens to the operations in flight when a phase's
// time is up.
type phaseEnd bool

const (
	// cutOff cancels them; they count as neither success nor failure.
	// The measured phase ends so: its clients are not used again.
	cutOff phaseEnd = false
	// drain lets them finish, and every client makes at least one
	// operation however late it starts. The warm-up ends so: each client
	// is warm, and a refresh cancelled after the server rotated the token
	// would leave its client holding a used refresh token, and every later
	// operation of that client would fail.
	drain phaseEnd = true
)

// runPhase runs one goroutine per op, taking operations from p, until p's
// cap or until stop ends (stop is derived from ctx). progress, when not
// nil, is called every interval.
func runPhase(ctx, stop context.Context, ops []op, p *pacer, end phaseEnd, every time.Duration, progress progressFunc) phase {
	runCtx := stop
	opCtx := stop
	if end == drain {
		opCtx = ctx
	}
	var (
		done, failed, httpReqs atomic.Int64
		mu                     sync.Mutex
		wg                     sync.WaitGroup
		ph                     = phase{errs: map[string]int64{}}
	)
	start := time.Now()
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if progress == nil {
			return
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				progress(time.Since(start), done.Load(), failed.Load())
			}
		}
	}()
	for _, o := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			var localService []time.Duration
			localErrs := map[string]int64{}
			wait := newWaiter()
			defer wait.stop()
			for ran := false; runCtx.Err() == nil || end == drain && !ran; ran = true {
				due, ok := p.take()
				if !ok {
					break
				}
				from := due
				if p.open() {
					if from, ok = wait.until(runCtx, due); !ok {
						break
					}
				}
				sent := time.Now()
				n, err := o(opCtx)
				answered := time.Now()
				if opCtx.Err() != nil && err != nil {
					// Cut off by the end of the phase: neither a success
					// nor a failure of the server.
					break
				}
				httpReqs.Add(int64(n))
				done.Add(1)
				local = append(local, answered.Sub(from))
				if p.open() {
					localService = append(localService, answered.Sub(sent))
				}
				if err != nil {
					failed.Add(1)
					localErrs[errorKey(err)]++
				}
			}
			mu.Lock()
			ph.latencies = append(ph.latencies, local...)
			ph.service = append(ph.service, localService...)
			for k, v := range localErrs {
				ph.errs[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	ph.elapsed = time.Since(start)
	close(stopProgress)
	<-progressDone
	ph.done, ph.failed, ph.httpReqs = done.Load(), failed.Load(), httpReqs.Load()
	return ph
}
