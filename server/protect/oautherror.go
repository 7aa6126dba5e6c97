package protect

import (
	"encoding/json"
	"html"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
)

// oauthError is the RFC 6749 §5.2 error body. Every refusal from this
// package uses it so OAuth clients can parse what they get back.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// writeError writes an OAuth-style JSON error. The description is fixed
// text chosen here or a parameter name, never a parameter value.
func writeError(w http.ResponseWriter, status int, code, description string) {
	body, _ := json.Marshal(oauthError{Error: code, Description: description})
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// retryAfterSeconds renders a wait as whole seconds rounded up, at least 1,
// as RFC 9110 §10.2.3 wants a non-negative integer.
func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// Chain composes middleware into one, outermost first; the server builds
// each route's chain from its Policy with it, once, at start-up.
func Chain(mws ...mux.MiddlewareFunc) mux.MiddlewareFunc {
	return func(h http.Handler) http.Handler {
		for i := len(mws) - 1; i >= 0; i-- {
			h = mws[i](h)
		}
		return h
	}
}

// refuse answers a refusal in the format of the route's response kind: an
// RFC 6749 §5.2 JSON error for APIs (OAuth endpoints and the admin API), a
// small HTML page for pages, so a browser user reads a message instead of
// JSON. code and description are fixed text chosen by this package.
func refuse(w http.ResponseWriter, kind Kind, status int, code, description string) {
	if kind != Page {
		writeError(w, status, code, description)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>" +
		html.EscapeString(http.StatusText(status)) + "</title></head><body><h1>" +
		html.EscapeString(http.StatusText(status)) + "</h1><p>" + html.EscapeString(description) +
		"</p><p><small>" + html.EscapeString(code) + "</small></p></body></html>\n"))
}
