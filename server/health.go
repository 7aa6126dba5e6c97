package server

import (
	"context"
	"net/http"
	"time"
)

// healthz answers 200 while the process is alive; it touches nothing else,
// so an orchestrator does not restart replicas for a database outage.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// readyz answers 200 when the replica can serve: not shutting down, the
// database reachable and the Ready check (a usable signing key) passing.
// Otherwise 503 with Retry-After, so load balancers take the replica out.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	unavailable := func(body string) {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(body))
	}
	if s.draining.Load() {
		unavailable(`{"status":"shutting_down"}`)
		return
	}
	if err := s.cfg.DB.Ping(ctx); err != nil {
		s.cfg.Logger.WithError(err).Warn("readiness check failed")
		unavailable(`{"status":"unavailable","database":"unreachable"}`)
		return
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(ctx); err != nil {
			s.cfg.Logger.WithError(err).Warn("readiness check failed")
			unavailable(`{"status":"unavailable","database":"ok","signing_keys":"unusable"}`)
			return
		}
	}
	_, _ = w.Write([]byte(`{"status":"ok","database":"ok"}`))
}
