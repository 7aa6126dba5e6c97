package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
)

// Mounter is anything that adds its routes to a router: the OAuth provider,
// the admin API, the console.
type Mounter interface {
	Register(r *mux.Router)
}

// MounterFunc adapts a function to Mounter.
type MounterFunc func(r *mux.Router)

// Register implements Mounter.
func (f MounterFunc) Register(r *mux.Router) { f(r) }

// Pinger reports whether the database is reachable; /readyz uses it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config is everything the server needs, built by cmd/bulwark.
type Config struct {
	PublicAddr string
	AdminAddr  string
	// TLS, when non-nil, serves both listeners over TLS.
	TLS    *tls.Config
	Logger logrus.FieldLogger
	DB     Pinger
	// Public and Admin mount routes on each listener's router.
	Public []Mounter
	Admin  []Mounter
	// PublicMiddleware and AdminMiddleware wrap each listener's whole
	// router once, inside the pipeline and panic recovery, outermost first
	// (metrics go here so refused and unmatched requests are counted; the
	// route template is in reqinfo once the handler returns).
	PublicMiddleware []mux.MiddlewareFunc
	AdminMiddleware  []mux.MiddlewareFunc
	// Timeouts cut off slow clients. Zero values take the defaults below.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	Now                                                       func() time.Time
	// ClientIP resolves the caller's address (trusted proxies applied),
	// once per request, for every later layer. Nil means the direct peer.
	ClientIP func(*http.Request) netip.Addr
	// Protection supplies the limiter and detector the routes' policies
	// use (see protection.go). Nil still applies headers and strict input.
	Protection *Protection
	// Ready, when set, is asked by /readyz after the database ping; an
	// error (e.g. no usable signing key) makes the replica not ready.
	Ready func(ctx context.Context) error
	// ShutdownDelay is how long /readyz answers 503 after the serving
	// context ends before the listeners stop accepting, so load balancers
	// take the replica out before connections are refused.
	ShutdownDelay time.Duration
}

// Server holds the two handlers and, once Run is called, the listeners.
type Server struct {
	cfg    Config
	public http.Handler
	admin  http.Handler
	routes []RouteInfo
	// draining is set when shutdown begins; /readyz then answers 503.
	draining atomic.Bool
}

// New validates cfg and builds both routers.
func New(cfg Config) (*Server, error) {
	var problems []error
	if cfg.Logger == nil {
		problems = append(problems, errors.New("server: Logger is required"))
	}
	if cfg.DB == nil {
		problems = append(problems, errors.New("server: DB is required"))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.ReadHeaderTimeout, 5*time.Second)
	setDefault(&cfg.ReadTimeout, 15*time.Second)
	setDefault(&cfg.WriteTimeout, 30*time.Second)
	setDefault(&cfg.IdleTimeout, 120*time.Second)
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 32 << 10
	}
	s := &Server{cfg: cfg}
	var err error
	if s.public, err = s.buildRouter("public", cfg.PublicMiddleware, cfg.Public); err != nil {
		return nil, err
	}
	if s.admin, err = s.buildRouter("admin", cfg.AdminMiddleware, cfg.Admin); err != nil {
		return nil, err
	}
	return s, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// buildRouter registers every route, replaces each with its protection
// chain (built here, once) and wraps the router in the listener's
// middleware, panic recovery and the pipeline.
func (s *Server) buildRouter(listener string, mw []mux.MiddlewareFunc, mounts []Mounter) (http.Handler, error) {
	r := mux.NewRouter()
	// Unmatched requests run no route chain: they get the API headers here.
	r.NotFoundHandler = protect.Headers(protect.API)(http.HandlerFunc(notFound))
	r.MethodNotAllowedHandler = protect.Headers(protect.API)(http.HandlerFunc(methodNotAllowed))
	r.Handle("/healthz", protect.RouteFunc(protect.Ops(), healthz)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/readyz", protect.RouteFunc(protect.Ops(), s.readyz)).Methods(http.MethodGet, http.MethodHead)
	for _, m := range mounts {
		m.Register(r)
	}
	routes, err := s.cfg.Protection.protectRoutes(listener, r)
	if err != nil {
		return nil, err
	}
	s.routes = append(s.routes, routes...)
	var h http.Handler = r
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return pipeline(s.cfg.Logger, listener, s.cfg.Now, s.cfg.ClientIP, recoverPanics(s.cfg.Logger, h)), nil
}

// Routes lists every registered route of both listeners with its declared
// protection (tests enumerate it so new routes are covered automatically).
func (s *Server) Routes() []RouteInfo { return slices.Clone(s.routes) }

// PublicHandler is the public listener's handler (for tests and embedding).
func (s *Server) PublicHandler() http.Handler { return s.public }

// AdminHandler is the admin listener's handler.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// Run serves both listeners until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	var servers []*http.Server
	for _, l := range []struct {
		name, addr string
		h          http.Handler
	}{{"public", s.cfg.PublicAddr, s.public}, {"admin", s.cfg.AdminAddr, s.admin}} {
		if l.addr == "" {
			continue
		}
		srv := s.httpServer(l.addr, l.h)
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, o := range servers {
				_ = o.Close()
			}
			return fmt.Errorf("server: listen %s on %s: %w", l.name, l.addr, err)
		}
		servers = append(servers, srv)
		name := l.name
		s.cfg.Logger.WithFields(logrus.Fields{"listener": name, "addr": ln.Addr().String(), "tls": s.cfg.TLS != nil}).Info("listening")
		g.Go(func() error {
			var err error
			if s.cfg.TLS != nil {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("server: %s listener: %w", name, err)
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		// Readiness fails first, so load balancers stop sending new
		// requests while this replica still answers them; then drain.
		s.draining.Store(true)
		if ctx.Err() != nil {
			s.cfg.Logger.WithField("delay", s.cfg.ShutdownDelay.String()).Info("shutting down: /readyz answers 503; draining after the delay")
			t := time.NewTimer(s.cfg.ShutdownDelay)
			<-t.C
		}
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var errs []error
		for _, srv := range servers {
			errs = append(errs, srv.Shutdown(shutdownCtx)) //nolint:contextcheck // the serving ctx is already done
		}
		s.cfg.Logger.Info("listeners drained")
		return errors.Join(errs...)
	})
	return g.Wait()
}

func (s *Server) httpServer(addr string, h http.Handler) *http.Server {
	var tlsConfig *tls.Config
	if s.cfg.TLS != nil {
		// Each listener gets its own copy: net/http adds its ALPN protocols
		// to the config it serves with, which would race on a shared one.
		tlsConfig = s.cfg.TLS.Clone()
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          nil,
	}
}
