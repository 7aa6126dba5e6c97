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

// readyz answers 200 when the database is reachable and 503 with
// Retry-After otherwise, so load balancers drain a replica that lost it.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.cfg.DB.Ping(ctx); err != nil {
		s.cfg.Logger.WithError(err).Warn("readiness check failed")
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable","database":"unreachable"}`))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ok","database":"ok"}`))
}
