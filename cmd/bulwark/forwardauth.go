package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/pflag"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/server/forwardauth"
	"github.com/bulwark-auth/bulwark/storage"
)

// forwardAuthConfig configures the forward-auth endpoint (issue 14). It is
// off unless a rules file is named.
type forwardAuthConfig struct {
	ForwardAuthRules       string
	ForwardAuthPath        string
	ForwardAuthAddr        string
	ForwardAuthRate        float64
	ForwardAuthBurst       int
	ForwardAuthAuditSample float64
	ForwardAuthDenyList    int
	ForwardAuthHeaders     forwardauth.Headers

	forwardAuthLimitRaw   string
	forwardAuthHeadersRaw string
	forwardAuthSampleRaw  string
}

func forwardAuthFlags(fs *pflag.FlagSet, c *forwardAuthConfig) {
	fs.StringVar(&c.ForwardAuthRules, "forward-auth-rules", envOr("BULWARK_FORWARD_AUTH_RULES", ""), "forward-auth rules file (YAML, reloaded on change); enables the forward-auth endpoint")
	fs.StringVar(&c.ForwardAuthPath, "forward-auth-path", envOr("BULWARK_FORWARD_AUTH_PATH", forwardauth.DefaultPath), "forward-auth endpoint path on the public listener")
	fs.StringVar(&c.ForwardAuthAddr, "forward-auth-addr", envOr("BULWARK_FORWARD_AUTH_ADDR", ""), "optional listener of its own for the forward-auth endpoint (e.g. 127.0.0.1:4446)")
	fs.StringVar(&c.forwardAuthLimitRaw, "forward-auth-rate-limit", envOr("BULWARK_FORWARD_AUTH_RATE_LIMIT", "1000:2000"), "forward-auth checks per client or API key, rate:burst (per second, per replica)")
	fs.StringVar(&c.forwardAuthSampleRaw, "forward-auth-audit-sample", envOr("BULWARK_FORWARD_AUTH_AUDIT_SAMPLE", "0.01"), "fraction of forward-auth denials recorded as audit events (all are counted in metrics)")
	fs.IntVar(&c.ForwardAuthDenyList, "forward-auth-deny-list-size", 100_000, "revoked access tokens kept in memory for forward-auth; beyond it older tokens are looked up in the database")
	fs.StringVar(&c.forwardAuthHeadersRaw, "forward-auth-headers", envOr("BULWARK_FORWARD_AUTH_HEADERS", ""), "identity header names, e.g. subject=X-User,client_id=X-Client,scope=X-Scope,token_type=X-Token-Type")
}

// finishForwardAuth validates the forward-auth settings.
func (c *forwardAuthConfig) finishForwardAuth() []error {
	var problems []error
	// Zero values (a config built in code, not from flags) take the flag
	// defaults.
	if c.ForwardAuthPath == "" {
		c.ForwardAuthPath = forwardauth.DefaultPath
	}
	if c.forwardAuthLimitRaw == "" {
		c.forwardAuthLimitRaw = "1000:2000"
	}
	if c.forwardAuthSampleRaw == "" {
		c.forwardAuthSampleRaw = "0.01"
	}
	if c.ForwardAuthDenyList == 0 {
		c.ForwardAuthDenyList = 100_000
	}
	if !strings.HasPrefix(c.ForwardAuthPath, "/") || strings.ContainsAny(c.ForwardAuthPath, "{}?# ") {
		problems = append(problems, fmt.Errorf("--forward-auth-path %q: use an absolute path", c.ForwardAuthPath))
	}
	rate, burst, ok := strings.Cut(c.forwardAuthLimitRaw, ":")
	r, err1 := strconv.ParseFloat(rate, 64)
	b, err2 := strconv.Atoi(burst)
	if !ok || err1 != nil || err2 != nil || r <= 0 || b <= 0 {
		problems = append(problems, fmt.Errorf("--forward-auth-rate-limit %q: use rate:burst, e.g. 1000:2000", c.forwardAuthLimitRaw))
	}
	c.ForwardAuthRate, c.ForwardAuthBurst = r, b
	s, err := strconv.ParseFloat(c.forwardAuthSampleRaw, 64)
	if err != nil || s < 0 || s > 1 {
		problems = append(problems, fmt.Errorf("--forward-auth-audit-sample %q: use a fraction between 0 and 1", c.forwardAuthSampleRaw))
	}
	c.ForwardAuthAuditSample = s
	if c.ForwardAuthDenyList <= 0 {
		problems = append(problems, errors.New("--forward-auth-deny-list-size must be positive"))
	}
	for _, part := range strings.Split(c.forwardAuthHeadersRaw, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if v == "" || strings.ContainsAny(v, " :\t") {
			problems = append(problems, fmt.Errorf("--forward-auth-headers %q: use field=Header-Name", part))
			continue
		}
		switch k {
		case "subject":
			c.ForwardAuthHeaders.Subject = v
		case "client_id":
			c.ForwardAuthHeaders.ClientID = v
		case "scope":
			c.ForwardAuthHeaders.Scope = v
		case "token_type":
			c.ForwardAuthHeaders.TokenType = v
		default:
			problems = append(problems, fmt.Errorf("--forward-auth-headers: unknown field %q (subject, client_id, scope, token_type)", k))
		}
	}
	return problems
}

// forwardAuth is the assembled endpoint with its background work.
type forwardAuth struct {
	handler     *forwardauth.Handler
	revocations *forwardauth.Revocations
	rules       *forwardauth.Rules
	path, addr  string
	log         logrus.FieldLogger
}

// buildForwardAuth assembles the endpoint, or returns nil when no rules
// file is configured. An invalid rules file refuses to start.
func buildForwardAuth(cfg config, store storage.Store, ring *keys.Ring, keySvc *apikeys.Service, proofs *dpop.Verifier, reg prometheus.Registerer,
	audit func(context.Context, storage.AuditEvent), now func() time.Time, log logrus.FieldLogger) (*forwardAuth, error) {
	if cfg.ForwardAuthRules == "" {
		return nil, nil
	}
	rules, err := forwardauth.LoadRules(cfg.ForwardAuthRules, log)
	if err != nil {
		return nil, err
	}
	revs, err := forwardauth.NewRevocations(forwardauth.RevocationsConfig{
		Notifier: store, Lookup: store, MaxEntries: cfg.ForwardAuthDenyList, Now: now, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	h, err := forwardauth.New(forwardauth.Config{
		Issuer: cfg.Issuer, JWT: ring.Signer(cfg.AccessTokenAlg), KeyPublished: func(kid string) bool { _, ok := ring.VerificationKey(kid); return ok }, Revocations: revs, APIKeys: keySvc, Notifier: store,
		Rules: rules, Metrics: forwardauth.NewMetrics(reg), Logger: log, Audit: audit,
		AuditSampleRate: cfg.ForwardAuthAuditSample, Headers: cfg.ForwardAuthHeaders,
		Rate: cfg.ForwardAuthRate, Burst: cfg.ForwardAuthBurst, Now: now, DPoP: proofs,
	})
	if err != nil {
		return nil, err
	}
	return &forwardAuth{handler: h, revocations: revs, rules: rules, path: cfg.ForwardAuthPath, addr: cfg.ForwardAuthAddr, log: log}, nil
}

// mount registers the endpoint on the public router unless it has a
// listener of its own.
func (f *forwardAuth) mount(r *mux.Router) {
	if f != nil && f.addr == "" {
		f.handler.Routes(f.path)(r)
	}
}

// run keeps the deny list, the API key cache and the rules current, and
// serves the endpoint's own listener when configured, until ctx ends.
func (f *forwardAuth) run(ctx context.Context) error {
	if f == nil {
		return nil
	}
	go f.revocations.Run(ctx, time.Minute)
	go f.handler.Run(ctx)
	go f.rules.Watch(ctx, 2*time.Second)
	if f.addr == "" {
		<-ctx.Done()
		return nil
	}
	r := mux.NewRouter()
	f.handler.Routes(f.path)(r)
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 32 << 10}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("forward-auth listener: %w", err)
	}
	f.log.WithField("addr", ln.Addr().String()).Info("forward-auth listening")
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("forward-auth listener: %w", err)
	}
	return nil
}
