package server

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
)

// statusWriter remembers the status code for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status = http.StatusOK
		w.wrote = true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// accessLog writes one line per request: time, request id, method, route
// template, status, latency, remote IP and client id. It never logs the
// path's query, headers, cookies or bodies, which may carry codes, tokens or
// secrets.
func accessLog(log logrus.FieldLogger, listener string, now func() time.Time, clientIP func(*http.Request) netip.Addr, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := now()
		remote, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			remote = r.RemoteAddr
		}
		if clientIP != nil {
			if ip := clientIP(r); ip.IsValid() {
				remote = ip.String()
			}
		}
		info := &reqinfo.Info{ID: newRequestID(), RemoteIP: remote, UserAgent: r.UserAgent()}
		w.Header().Set("X-Request-Id", info.ID)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(reqinfo.With(r.Context(), info)))
		status := sw.status
		if !sw.wrote {
			status = http.StatusOK
		}
		route := info.Route()
		if route == "" {
			route = "unmatched"
		}
		log.WithFields(logrus.Fields{
			"listener":   listener,
			"request_id": info.ID,
			"method":     r.Method,
			"route":      route,
			"status":     status,
			"latency_ms": float64(now().Sub(start).Microseconds()) / 1000,
			"remote_ip":  info.RemoteIP,
			"client_id":  info.ClientID(),
		}).Info("request")
	})
}

// recordRoute stores the matched route template for the access log and
// metrics.
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if route := mux.CurrentRoute(r); route != nil {
			if tpl, err := route.GetPathTemplate(); err == nil {
				reqinfo.From(r.Context()).SetRoute(tpl)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic into a plain 500 without a stack trace in the
// response. The log line names the request, not the panic value, which
// could hold request data.
func recoverPanics(log logrus.FieldLogger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
					panic(v)
				}
				log.WithFields(logrus.Fields{
					"request_id": reqinfo.RequestID(r.Context()),
					"route":      reqinfo.From(r.Context()).Route(),
				}).Error("handler panicked")
				writeJSONError(w, http.StatusInternalServerError, "server_error", "The server could not complete the request.")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSONError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + code + `","error_description":"` + description + `"}`))
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeJSONError(w, http.StatusNotFound, "not_found", "No such endpoint.")
}

func methodNotAllowed(w http.ResponseWriter, _ *http.Request) {
	writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed on this endpoint.")
}
