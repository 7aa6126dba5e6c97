package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/hkdf"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/server"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/server/apikeyauth"
	"github.com/bulwark-auth/bulwark/server/audit"
	"github.com/bulwark-auth/bulwark/server/backchannel"
	"github.com/bulwark-auth/bulwark/server/console"
	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/server/egress"
	"github.com/bulwark-auth/bulwark/server/logjson"
	"github.com/bulwark-auth/bulwark/server/metrics"
	"github.com/bulwark-auth/bulwark/server/oauth"
	"github.com/bulwark-auth/bulwark/server/profiling"
	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/server/registration"
	"github.com/bulwark-auth/bulwark/server/tlsconf"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/clientcache"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/postgres"
	"github.com/bulwark-auth/bulwark/storage/seed"
)

func newLogger(format, level string, out io.Writer) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(out)
	if format == "text" {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	} else {
		log.SetFormatter(logjson.Formatter{})
	}
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	log.SetLevel(lvl)
	return log, nil
}

func (c *cli) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the server (public and admin listeners, background jobs)",
		Long: `Run the server: the public listener (OAuth endpoints, login pages) and the
admin listener (admin API, console, metrics), with signing-key rotation,
API-key rotation and the janitor running in the background.

With --dev it runs on an in-process store with generated secrets and a demo
client and user; nothing persists. Otherwise it needs DATABASE_URL,
BULWARK_SECRET (or BULWARK_SECRET_FILE) and BULWARK_ISSUER. An unreachable
database is retried for --database-wait; at SIGTERM /readyz answers 503 for
--shutdown-delay before the listeners drain.`,
		Example: `  bulwark serve --dev
  bulwark serve --issuer https://auth.example.com --seed /etc/bulwark/seed.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := &c.cfg
			if cfg.Dev && cfg.Issuer == "" {
				cfg.Issuer = "http://127.0.0.1" + portOf(cfg.PublicAddr)
			}
			if err := cfg.finish(*c.secret, *c.secretFile, *c.alg); err != nil {
				return usageError{msg: "configuration:\n" + err.Error()}
			}
			log, err := newLogger(cfg.LogFormat, cfg.LogLevel, c.stderr)
			if err != nil {
				return err
			}
			tuneGC(log)
			a, err := build(cmd.Context(), *cfg, log, c.stdout)
			if err != nil {
				return err
			}
			defer a.Close()
			return a.Run(cmd.Context())
		},
	}
}

// defaultGOGC is the garbage collector's target when the operator sets no
// GOGC: the server's live heap is small (tens of MB), so collecting at 5×
// instead of 2× costs little memory and ~10% less CPU per request
// (docs/performance.md, round 4). Set GOMEMLIMIT in a memory-capped
// container so the runtime collects earlier when it nears the cap.
const defaultGOGC = 400

// tuneGC applies defaultGOGC unless GOGC is set in the environment.
func tuneGC(log logrus.FieldLogger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(defaultGOGC)
	log.WithField("gogc", defaultGOGC).Debug("garbage collector target set (GOGC unset)")
}

// portOf returns ":port" of a listen address, defaulting to :4444.
func portOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i:]
		}
	}
	return ":4444"
}

// app is the assembled server with its background jobs.
type app struct {
	store    storage.Store
	ring     *keys.Ring
	apiKeys  *apikeys.Service
	clients  *clientcache.Store
	detector *protect.Detector
	server   *server.Server
	log      logrus.FieldLogger

	janitorEvery time.Duration
	janitorKeep  retention

	// forwardAuth is nil unless a rules file is configured.
	forwardAuth *forwardAuth
	// logouts delivers queued back-channel logout tokens.
	logouts *backchannel.Worker

	// origins are the clients' CORS origins, followed on every replica.
	origins *protect.ClientOrigins
}

func (a *app) Close() { a.store.Close() }

// Run serves until ctx ends, running the key ring's scheduler alongside.
func (a *app) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// wg.Go counts each job itself, so adding one cannot unbalance it.
	var wg sync.WaitGroup
	wg.Go(func() { a.clients.Run(ctx) })
	wg.Go(func() { a.origins.Run(ctx) })
	wg.Go(func() { runJanitor(ctx, a.store, a.janitorEvery, a.janitorKeep, time.Now, a.log) })
	wg.Go(func() { a.ring.Run(ctx) })
	wg.Go(func() { a.apiKeys.Run(ctx) })
	wg.Go(func() { a.logouts.Run(ctx) })
	wg.Go(func() {
		if err := a.detector.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.WithError(err).Error("anomaly detector stopped")
		}
	})
	go func() {
		if err := a.forwardAuth.run(ctx); err != nil {
			a.log.WithError(err).Error("forward-auth stopped")
			cancel()
		}
	}()
	err := a.server.Run(ctx)
	// Requests have drained: record the API keys' last use before the
	// background jobs stop, or those uses would be lost.
	flushCtx, flushCancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	if ferr := a.apiKeys.FlushTouches(flushCtx); ferr != nil {
		a.log.WithError(ferr).Warn("final API key last-use flush failed")
	}
	flushCancel()
	cancel()
	wg.Wait()
	return err
}

// build assembles the dependency graph. Each step names what it needs.
func build(ctx context.Context, cfg config, log *logrus.Logger, stdout io.Writer) (*app, error) {
	now := time.Now
	if cfg.now != nil {
		now = cfg.now
	}
	var store storage.Store
	var pgStore *postgres.Store
	if cfg.Dev && cfg.DatabaseURL == "" {
		log.Warn("DEV MODE: in-memory store — nothing persists, every restart starts empty. Never use --dev in production.")
		store = memory.New(memory.Config{Now: now})
	} else {
		pg, err := openWithRetry(ctx, postgres.Config{DSN: cfg.DatabaseURL, Now: now, Logger: log}, cfg.DatabaseWait, log)
		if err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		if cfg.Migrate {
			applied, err := postgres.MigrateUp(ctx, pg.Pool())
			if err != nil {
				pg.Close()
				return nil, fmt.Errorf("migrate: %w", err)
			}
			for _, m := range applied {
				log.WithField("migration", m).Info("applied migration")
			}
		}
		pending, err := postgres.Pending(ctx, pg.Pool())
		if err != nil {
			pg.Close()
			return nil, fmt.Errorf("check migrations: %w", err)
		}
		if pending > 0 {
			pg.Close()
			return nil, fmt.Errorf("the database has %d pending migration(s): run `bulwark migrate up` first, or start with --migrate", pending)
		}
		store, pgStore = pg, pg
	}
	// Clients are read from memory on the token path; changes evict on
	// every replica through LISTEN/NOTIFY (30 s TTL as the safety net).
	clients := clientcache.New(store, clientcache.Config{Now: now, Logger: log})
	a, err := assemble(ctx, cfg, clients, pgStore, log, now)
	if err != nil {
		store.Close()
		return nil, err
	}
	if cfg.Dev {
		if err := devBootstrap(ctx, cfg, clients, a.hasher, stdout); err != nil {
			store.Close()
			return nil, err
		}
	}
	a.app.clients = clients
	// The seed and dev clients exist now; Run keeps the set current.
	if err := a.app.origins.Load(ctx); err != nil {
		store.Close()
		return nil, err
	}
	return a.app, nil
}

type assembled struct {
	app    *app
	hasher *hash.Cached
}

// assemble builds everything above the store. pg is the Postgres store
// under store (for pool metrics), or nil for the in-memory store.
func assemble(ctx context.Context, cfg config, store storage.Store, pg *postgres.Store, log *logrus.Logger, now func() time.Time) (*assembled, error) {
	secrets := cfg.Secrets
	if len(secrets) == 0 { // --dev only; finish() requires a secret otherwise
		s := make([]byte, 48)
		if _, err := rand.Read(s); err != nil {
			return nil, err
		}
		secrets = [][]byte{[]byte(base64.RawStdEncoding.EncodeToString(s))}
		log.Warn("DEV MODE: generated a random master secret; sealed keys will not survive a restart")
	}
	box, err := secretbox.New(secrets)
	if err != nil {
		return nil, fmt.Errorf("master secret: %w", err)
	}
	passwords, err := hash.New(hash.DefaultParams())
	if err != nil {
		return nil, err
	}
	// Client secrets and API keys verify through the cache; user passwords
	// never do (see keys/hash).
	// protect.Gate counts client-secret guesses right before Argon2id runs.
	cached := hash.NewCached(passwords, hash.CacheConfig{TTL: 5 * time.Minute, MaxEntries: 10000, Now: now, Gate: protect.Gate})
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(registry)
	m.SetBuildInfo(buildVersion())
	sink := audit.NewSink(store, log, now, audit.WithObserver(auditMetrics(m)))

	ring, err := keys.NewRing(ctx, keys.Config{
		Store: store, Locker: store, Notifier: store, Sealer: box,
		Algorithms:     cfg.SigningAlgs,
		RotationPeriod: cfg.KeyRotation,
		LeadTime:       cfg.KeyLeadTime,
		Retention:      cfg.KeyRetention,
		JWKSMaxAge:     cfg.JWKSMaxAge,
		Now:            now,
		Logger:         log,
		Audit:          sink.Record,
	})
	if err != nil {
		return nil, fmt.Errorf("key ring: %w", err)
	}
	if err := ring.Bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("key ring bootstrap: %w", err)
	}
	m.SetKeyAges(keyAges(store, now))
	m.SetKeyHealth(func() metrics.KeyHealth {
		h := ring.Health()
		return metrics.KeyHealth{Usable: h.Usable, BlockedActivations: h.BlockedActivations}
	})
	if pg != nil {
		m.SetDBStats(poolStats(pg))
	}

	keySvc, err := apikeys.New(apikeys.Config{
		Store: store, Locker: store, Notifier: store, Hasher: cached, Sealer: box,
		Now: now, Logger: log, Audit: sink.Record,
		DefaultRotation: cfg.APIKeyRotation, DefaultGrace: cfg.APIKeyGrace,
	})
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}

	// The client IP is resolved once per request by the server's pipeline.
	// Forwarded headers from a peer that is not a trusted proxy are
	// ignored; the first one is logged loudly (every one is counted),
	// because it usually means a load balancer nobody declared, and then
	// every user shares its address.
	var warnProxy sync.Once
	ips := protect.NewIPResolver(cfg.TrustedProxies).OnUntrustedForwarded(func(peer netip.Addr) {
		m.UntrustedForwarded()
		warnProxy.Do(func() {
			log.WithField("peer", peer.String()).Warn("a request carried X-Forwarded-For/Forwarded from a peer that is not a trusted proxy; the header is ignored. " +
				"If Bulwark runs behind a load balancer or ingress, set --trusted-proxies (BULWARK_TRUSTED_PROXIES) to its addresses, " +
				"or every user will appear to come from the proxy's address")
		})
	})
	limiter := protect.NewLimiter(protect.RateConfig{
		PerIP: cfg.RateLimits, PerClient: cfg.ClientRateLimits, ClientOverrides: cfg.ClientRateOverrides, PerAccount: cfg.AccountRateLimits,
		Now: now,
		OnBlock: func(r *http.Request, key string) {
			class, source := protect.SplitKey(key)
			m.RateLimited(class)
			sink.Record(r.Context(), storage.AuditEvent{Event: "ratelimit.blocked", Outcome: "refused", Details: map[string]string{"class": class, "source": source}})
		},
	})
	// Anomaly responses target the offender the signal names. An address
	// is blocked only for credential stuffing (failed sign-ins across many
	// accounts); refresh-token reuse counts against the client that
	// replayed and alerts, blocking that client only if the operator asked.
	reuse := protect.Threshold{Count: cfg.RefreshReuseThreshold, Window: 10 * time.Minute, BlockFor: 15 * time.Minute, AlertOnly: !cfg.BlockOnRefreshReuse}
	detector, err := protect.NewDetector(protect.DetectorConfig{
		Store: store, Notifier: store, Log: log, Now: now, Audit: sink.Record, OnBlock: m.Blocked,
		OnPlaced:   func(kind string, sig protect.Signal) { m.BlockPlaced(kind, string(sig)) },
		OnAlert:    func(kind string, sig protect.Signal) { m.AnomalyAlert(kind, string(sig)) },
		NeverBlock: cfg.NeverBlock,
		PerIP: map[protect.Signal]protect.Threshold{
			protect.SignalFailedLogin: {Count: cfg.StuffingAccounts, Window: 10 * time.Minute, BlockFor: 15 * time.Minute, Distinct: true},
			// Wrong device user codes: the device guard throttles the
			// address; the detector raises an alert for operators.
			protect.SignalInvalidUserCode: {Count: 20, Window: 15 * time.Minute, BlockFor: 15 * time.Minute, AlertOnly: true},
		},
		PerClient: map[protect.Signal]protect.Threshold{
			protect.SignalRefreshReuse: reuse,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("anomaly detector: %w", err)
	}
	// Per-account counters live in the store, shared by every replica.
	loginGuard := protect.NewGuard(store, protect.GuardConfig{Name: "login", Now: now})
	clientGuard := protect.NewGuard(store, protect.GuardConfig{Name: "client", Now: now})
	// Device user codes (RFC 8628 §5.1): per address, wrong codes only
	// (a right one refunds its attempt); per device code, every entry.
	deviceGuard := protect.NewGuard(store, protect.GuardConfig{Name: "device-user-code", LockAfter: 20, Now: now})

	// Outbound requests to client-registered URLs (jwks_uri) go through
	// the egress rules only.
	eg := egress.New(cfg.egressOptions())
	regTokens, err := registrationTokens(secrets)
	if err != nil {
		return nil, fmt.Errorf("registration tokens: %w", err)
	}
	registrationEndpoint := ""
	if cfg.Registration {
		registrationEndpoint = cfg.Issuer + registration.Path
	}

	// DPoP proofs: used jtis in the store (every replica), nonces keyed by
	// the master secret(s), newest first, so replicas agree and a nonce
	// survives a master-secret rotation.
	nonceKeys := make([][]byte, len(secrets))
	for i, s := range secrets {
		nonceKeys[i] = deriveSecret(s, "bulwark dpop nonce")
	}
	proofs, err := dpop.New(dpop.Config{Store: store, NonceKeys: nonceKeys, Nonce: cfg.DPoPNonce, Window: cfg.DPoPWindow, Now: now})
	if err != nil {
		return nil, fmt.Errorf("dpop: %w", err)
	}

	provider, err := oauth.New(oauth.Config{
		Issuer:               cfg.Issuer,
		Store:                store,
		AccessTokenSigner:    ring.Signer(cfg.AccessTokenAlg),
		IDTokenSigner:        ring.Signer(cfg.IDTokenAlg),
		IDTokenSigners:       idTokenSigners(ring, cfg.SigningAlgs),
		AccessTokenAlg:       cfg.AccessTokenAlg,
		IDTokenAlg:           cfg.IDTokenAlg,
		JWKS:                 ring.JWKS,
		JWKSMaxAge:           ring.MaxAge(),
		Hasher:               cached,
		PasswordHasher:       passwords,
		GlobalSecret:         deriveSecret(secrets[0], "bulwark fosite global secret"),
		AccessTokenLifespan:  cfg.AccessTokenLifespan,
		RefreshTokenLifespan: cfg.RefreshTokenLifespan,
		IDTokenLifespan:      cfg.IDTokenLifespan,
		AuthCodeLifespan:     cfg.AuthCodeLifespan,
		LoginSessionLifespan: cfg.LoginLifespan,
		SecureCookies:        cfg.TLSCert != "" || strings.HasPrefix(cfg.Issuer, "https://"),
		Now:                  now,
		Logger:               log,
		Audit:                sink.Record,
		AuditToken:           sink.WithToken,
		APIKeys:              keySvc,
		JWKSFetcher:          registration.JWKSFetcher(eg, 0, 0),
		RegistrationEndpoint: registrationEndpoint,
		BackchannelLogout:    true,
		DPoP:                 proofs,
		Defense: oauth.Defense{
			LoginGuard: loginGuard, ClientGuard: clientGuard, Signals: detector, Metrics: m, DeviceGuard: deviceGuard,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("oauth provider: %w", err)
	}

	adminSvc, err := admin.NewService(admin.Config{
		Store: store, Hasher: passwords, Keys: ring, APIKeys: keySvc, Evict: cached.Evict, Blocks: detector,
		SecretOverlap: cfg.SecretOverlap, AllowedScopes: cfg.AllowedScopes, RegistrationTokens: regTokens,
		Now: now, Logger: log, Audit: sink.Record,
	})
	if err != nil {
		return nil, fmt.Errorf("admin service: %w", err)
	}
	adminAPI := admin.NewAPI(adminSvc, apikeyauth.Middleware(keySvc, apikeyauth.WithLogger(log), apikeyauth.WithAudit(sink.Record)))

	con, err := console.New(console.Config{
		Service: adminSvc, Store: store, Hasher: passwords, Sealer: box,
		// Secure cookies with TLS here or behind a TLS-terminating proxy
		// (an https issuer says so).
		Secure: cfg.TLSCert != "" || strings.HasPrefix(cfg.Issuer, "https://"),
		Now:    now, Logger: log, Audit: sink.Record, Issuer: cfg.Issuer,
	})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}

	cfg.now = now
	mountRegistration, err := buildRegistration(cfg, adminSvc, store, regTokens, eg, cached, sink.Record, log)
	if err != nil {
		return nil, fmt.Errorf("registration: %w", err)
	}
	logouts, err := buildBackchannel(cfg, store, ring, registry, sink.Record, now, log)
	if err != nil {
		return nil, fmt.Errorf("back-channel logout: %w", err)
	}

	fwd, err := buildForwardAuth(cfg, store, ring, keySvc, proofs, registry, sink.Record, now, log)
	if err != nil {
		return nil, fmt.Errorf("forward-auth: %w", err)
	}

	var tlsConfig *tls.Config
	if cfg.TLSCert != "" {
		tlsConfig, _, err = tlsconf.Config(cfg.TLSCert, cfg.TLSKey, log)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
	}
	adminMounts := []server.Mounter{adminAPI, con, server.MounterFunc(func(r *mux.Router) {
		r.Handle("/metrics", protect.Route(protect.Ops(), m.Handler())).Methods(http.MethodGet)
	})}
	if cfg.PProf {
		adminMounts = append(adminMounts, profiling.Profiles{})
	}
	// Browser origins of single-page apps (CORS on token, userinfo and
	// revocation), in memory, following client changes on every replica.
	origins := protect.NewClientOrigins(store, 0, log)
	readHeader, read, write, idle := protect.ServerTimeouts()
	srv, err := server.New(server.Config{
		PublicAddr: cfg.PublicAddr,
		AdminAddr:  cfg.AdminAddr,
		TLS:        tlsConfig,
		Logger:     log,
		DB:         store,
		ClientIP:   ips.IP,
		Public: []server.Mounter{provider, apikeyauth.SelfRotate(keySvc, apikeyauth.WithLogger(log), apikeyauth.WithAudit(sink.Record)),
			server.MounterFunc(fwd.mount), server.MounterFunc(mountRegistration)},
		Admin:            adminMounts,
		PublicMiddleware: []mux.MiddlewareFunc{m.Instrument(nil)},
		AdminMiddleware:  []mux.MiddlewareFunc{m.Instrument(nil)},
		Protection: &server.Protection{Limiter: limiter, Detector: detector, TrustedOrigins: trustedOrigins(cfg.Issuer),
			Origins: origins},
		// Not ready while an algorithm has no usable active key: its token
		// requests would fail.
		Ready:             func(context.Context) error { return ring.Ready() },
		ShutdownDelay:     cfg.ShutdownDelay,
		ReadHeaderTimeout: readHeader, ReadTimeout: read, WriteTimeout: write, IdleTimeout: idle,
		MaxHeaderBytes: protect.MaxHeaderBytes,
		Now:            now,
	})
	if err != nil {
		return nil, err
	}
	if cfg.SeedFile != "" {
		if err := applySeed(ctx, cfg.SeedFile, store, cached, cfg.AllowedScopes, now, log); err != nil {
			return nil, err
		}
	}
	return &assembled{app: &app{store: store, ring: ring, apiKeys: keySvc, detector: detector, origins: origins, forwardAuth: fwd, logouts: logouts, server: srv, log: log,
		janitorEvery: cfg.JanitorInterval, janitorKeep: cfg.retention()}, hasher: cached}, nil
}

// trustedOrigins is the issuer's origin, accepted as same-site by the
// cross-origin check of form posts even when a proxy rewrites Host.
func trustedOrigins(issuer string) []string {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return nil
	}
	return []string{u.Scheme + "://" + u.Host}
}

// openWithRetry opens Postgres, retrying with exponential backoff (1s
// doubling up to 15s) for at most wait, with one log line per failed
// attempt: in Compose or Kubernetes the database often starts after us.
// Errors other than an unreachable database (bad DSN, wrong password) fail
// at once.
func openWithRetry(ctx context.Context, pc postgres.Config, wait time.Duration, log logrus.FieldLogger) (*postgres.Store, error) {
	deadline := time.Now().Add(wait)
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		pg, err := postgres.Open(ctx, pc)
		if err == nil {
			return pg, nil
		}
		if !errors.Is(err, storage.ErrUnavailable) || time.Now().Add(backoff).After(deadline) {
			return nil, err
		}
		log.WithError(err).WithFields(logrus.Fields{"attempt": attempt, "retry_in": backoff.String()}).Warn("database unreachable; retrying")
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// auditMetrics counts failed audit writes and sign-in outcomes, read off
// the audit stream so the sign-in handlers need no metrics of their own.
func auditMetrics(m *metrics.Metrics) func(*storage.AuditEvent, error) {
	return func(e *storage.AuditEvent, stored error) {
		if stored != nil {
			m.AuditWriteFailed()
		}
		switch e.Event {
		case oauth.EventLogin:
			m.SignIn("login", e.Outcome)
		case console.EventLogin:
			m.SignIn("console", e.Outcome)
		}
	}
}

// keyAges reports, per algorithm, how long the active signing key has been
// signing (a metrics gauge).
func keyAges(store storage.SigningKeyStore, now func() time.Time) func() map[string]time.Duration {
	return func() map[string]time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		list, err := store.ListSigningKeys(ctx)
		if err != nil {
			return nil
		}
		out := map[string]time.Duration{}
		for _, k := range list {
			if k.State == storage.KeyActive {
				out[k.Algorithm] = now().Sub(k.ActivatedAt)
			}
		}
		return out
	}
}

// poolStats maps pgx pool statistics onto the metrics gauges.
func poolStats(pg *postgres.Store) func() metrics.DBStats {
	return func() metrics.DBStats {
		st := pg.Pool().Stat()
		return metrics.DBStats{
			TotalConns: st.TotalConns(), IdleConns: st.IdleConns(), AcquiredConns: st.AcquiredConns(), MaxConns: st.MaxConns(),
			AcquireCount: st.AcquireCount(), EmptyAcquireCount: st.EmptyAcquireCount(), AcquireDuration: st.AcquireDuration(),
		}
	}
}

// deriveSecret derives a purpose-bound 32-byte key from the master secret,
// so one configured secret serves several uses without reuse.
func deriveSecret(master []byte, purpose string) []byte {
	out := make([]byte, 32)
	r := hkdf.New(sha256.New, master, nil, []byte(purpose))
	if _, err := io.ReadFull(r, out); err != nil {
		panic(err) // hkdf cannot fail for 32 bytes
	}
	return out
}

func applySeed(ctx context.Context, path string, store storage.Store, hasher *hash.Cached, allowedScopes []string, now func() time.Time, log logrus.FieldLogger) error {
	f, err := os.Open(path) // #nosec G304 -- the operator names the seed file; reading it is the point
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer f.Close()
	doc, err := seed.Parse(f)
	if err != nil {
		return err
	}
	if err := doc.LoadPasswordFiles(filepath.Dir(path)); err != nil {
		return err
	}
	res, err := (&seed.Applier{Store: store, Hasher: hasher, AllowedScopes: allowedScopes, Now: now}).Apply(ctx, doc)
	if err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"clients_created": res.ClientsCreated, "clients_updated": res.ClientsUpdated, "users_created": res.UsersCreated, "users_updated": res.UsersUpdated}).Info("seed applied")
	return nil
}
