package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"crypto/sha256"
	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/server"
	"github.com/bulwark-auth/bulwark/server/oauth"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/postgres"
	"github.com/bulwark-auth/bulwark/storage/seed"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/hkdf"
)

func newLogger(format, level string, out io.Writer) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(out)
	if format == "text" {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	} else {
		log.SetFormatter(&logrus.JSONFormatter{})
	}
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	log.SetLevel(lvl)
	return log, nil
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	secretFile, secretFlag, algs, scopes := configFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Dev && cfg.Issuer == "" {
		cfg.Issuer = "http://127.0.0.1" + portOf(cfg.PublicAddr)
	}
	if err := cfg.finish(*secretFlag, *secretFile, *algs, *scopes); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log, err := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	app, err := build(ctx, cfg, log, stdout)
	if err != nil {
		return err
	}
	defer app.Close()
	return app.Run(ctx)
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
	store  storage.Store
	ring   *keys.Ring
	server *server.Server
	log    logrus.FieldLogger
}

func (a *app) Close() { a.store.Close() }

// Run serves until ctx ends, running the key ring's scheduler alongside.
func (a *app) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.ring.Run(ctx)
	}()
	err := a.server.Run(ctx)
	cancel()
	<-done
	return err
}

// build assembles the dependency graph. Each step names what it needs.
func build(ctx context.Context, cfg config, log *logrus.Logger, stdout io.Writer) (*app, error) {
	now := time.Now
	var store storage.Store
	if cfg.Dev && cfg.DatabaseURL == "" {
		log.Warn("DEV MODE: in-memory store — nothing persists, every restart starts empty. Never use --dev in production.")
		store = memory.New(memory.Config{Now: now})
	} else {
		pg, err := postgres.Open(ctx, postgres.Config{DSN: cfg.DatabaseURL, Now: now, Logger: log})
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
		store = pg
	}
	a, err := assemble(ctx, cfg, store, log, now)
	if err != nil {
		store.Close()
		return nil, err
	}
	if cfg.Dev {
		if err := devBootstrap(ctx, cfg, store, a.hasher, stdout); err != nil {
			store.Close()
			return nil, err
		}
	}
	return a.app, nil
}

type assembled struct {
	app    *app
	hasher *hash.Cached
}

func assemble(ctx context.Context, cfg config, store storage.Store, log *logrus.Logger, now func() time.Time) (*assembled, error) {
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
	hasher, err := hash.New(hash.DefaultParams())
	if err != nil {
		return nil, err
	}
	cached := hash.NewCached(hasher, hash.CacheConfig{TTL: 5 * time.Minute, MaxEntries: 10000, Now: now})
	audit := func(ctx context.Context, e storage.AuditEvent) {
		if e.Time.IsZero() {
			e.Time = now()
		}
		if err := store.AppendAudit(ctx, &e); err != nil {
			log.WithError(err).WithField("event", e.Event).Error("audit append failed")
		}
		log.WithFields(logrus.Fields{"audit": true, "event": e.Event, "actor": e.Actor, "client_id": e.ClientID, "subject": e.Subject, "outcome": e.Outcome}).Info("audit")
	}
	ring, err := keys.NewRing(ctx, keys.Config{
		Store: store, Locker: store, Notifier: store, Sealer: box,
		Algorithms:     cfg.SigningAlgs,
		RotationPeriod: cfg.KeyRotation,
		LeadTime:       cfg.KeyLeadTime,
		Retention:      cfg.KeyRetention,
		JWKSMaxAge:     cfg.JWKSMaxAge,
		Now:            now,
		Logger:         log,
		Audit:          audit,
	})
	if err != nil {
		return nil, fmt.Errorf("key ring: %w", err)
	}
	if err := ring.Bootstrap(ctx); err != nil {
		return nil, fmt.Errorf("key ring bootstrap: %w", err)
	}
	provider, err := oauth.New(oauth.Config{
		Issuer:               cfg.Issuer,
		Store:                store,
		AccessTokenSigner:    ring.Signer(cfg.AccessTokenAlg),
		IDTokenSigner:        ring.Signer(cfg.IDTokenAlg),
		AccessTokenAlg:       cfg.AccessTokenAlg,
		IDTokenAlg:           cfg.IDTokenAlg,
		JWKS:                 ring.JWKS,
		JWKSMaxAge:           ring.MaxAge(),
		Hasher:               cached,
		GlobalSecret:         deriveSecret(secrets[0], "bulwark fosite global secret"),
		AccessTokenLifespan:  cfg.AccessTokenLifespan,
		RefreshTokenLifespan: cfg.RefreshTokenLifespan,
		IDTokenLifespan:      cfg.IDTokenLifespan,
		AuthCodeLifespan:     cfg.AuthCodeLifespan,
		LoginSessionLifespan: cfg.LoginLifespan,
		SecureCookies:        cfg.TLSCert != "" || !cfg.Dev,
		Now:                  now,
		Logger:               log,
		Audit:                audit,
	})
	if err != nil {
		return nil, fmt.Errorf("oauth provider: %w", err)
	}
	srv, err := server.New(server.Config{
		PublicAddr: cfg.PublicAddr,
		AdminAddr:  cfg.AdminAddr,
		Logger:     log,
		DB:         store,
		Public:     []server.Mounter{provider},
		Now:        now,
	})
	if err != nil {
		return nil, err
	}
	if cfg.SeedFile != "" {
		if err := applySeed(ctx, cfg.SeedFile, store, cached, now, log); err != nil {
			return nil, err
		}
	}
	return &assembled{app: &app{store: store, ring: ring, server: srv, log: log}, hasher: cached}, nil
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

func applySeed(ctx context.Context, path string, store storage.Store, hasher *hash.Cached, now func() time.Time, log logrus.FieldLogger) error {
	f, err := os.Open(path) //nolint:gosec // operator-supplied path by design
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer f.Close()
	doc, err := seed.Parse(f)
	if err != nil {
		return err
	}
	res, err := (&seed.Applier{Store: store, Hasher: hasher, Now: now}).Apply(ctx, doc)
	if err != nil {
		return err
	}
	log.WithFields(logrus.Fields{"clients_created": res.ClientsCreated, "clients_updated": res.ClientsUpdated, "users_created": res.UsersCreated, "users_updated": res.UsersUpdated}).Info("seed applied")
	return nil
}
