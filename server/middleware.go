package server

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
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

// pipeline is the outermost layer of each listener. It establishes the
// per-request facts every later layer reads from reqinfo (request id, the
// client IP resolved once behind the trusted proxies, the user agent), and
// afterwards writes one access-log line: time, request id, method, route
// template, protection kind, status, latency, client IP and client id. It
// never logs the query, headers, cookies or bodies, which may carry codes,
// tokens or secrets.
func pipeline(log logrus.FieldLogger, listener string, now func() time.Time, clientIP func(*http.Request) netip.Addr, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := now()
		var ip netip.Addr
		if clientIP != nil {
			ip = clientIP(r)
		} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			ip = ap.Addr().Unmap()
		}
		remote := r.RemoteAddr
		if ip.IsValid() {
			remote = ip.String()
		}
		info := &reqinfo.Info{ID: newRequestID(), IP: ip, RemoteIP: remote, UserAgent: cleanUserAgent(r.UserAgent())}
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
			"protection": info.Kind(),
			"status":     status,
			"latency_ms": float64(now().Sub(start).Microseconds()) / 1000,
			"remote_ip":  info.RemoteIP,
			"client_id":  info.ClientID(),
		}).Info("request")
	})
}

// maxUserAgent bounds what audit rows and logs keep of a User-Agent.
const maxUserAgent = 512

// cleanUserAgent makes the User-Agent safe to store: valid UTF-8, no NUL,
// bounded. (Routes refuse bad bytes with 400 anyway; this covers requests
// that match no route.)
func cleanUserAgent(ua string) string {
	ua = strings.ReplaceAll(strings.ToValidUTF8(ua, "\uFFFD"), "\x00", "")
	if len(ua) > maxUserAgent {
		ua = strings.ToValidUTF8(ua[:maxUserAgent], "")
	}
	return ua
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
