package profiling

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

func TestProfilesLoopbackOnly(t *testing.T) {
	r := mux.NewRouter()
	Profiles{}.Register(r)
	for _, tc := range []struct {
		name, remote, path string
		status             int
		body               string
	}{
		{"case=loopback v4 gets the index", "127.0.0.1:5555", "/debug/pprof/", 200, "goroutine"},
		{"case=loopback v6 gets a named profile", "[::1]:5555", "/debug/pprof/goroutine?debug=1", 200, "goroutine profile"},
		{"case=v4-mapped loopback is loopback", "[::ffff:127.0.0.1]:5555", "/debug/pprof/heap?debug=1", 200, "heap profile"},
		{"case=a remote peer gets 404", "192.0.2.7:5555", "/debug/pprof/", 404, ""},
		{"case=a remote peer cannot take a profile", "10.1.2.3:5555", "/debug/pprof/goroutine?debug=1", 404, ""},
		{"case=a remote peer claiming loopback in XFF gets 404", "192.0.2.7:5555", "/debug/pprof/heap", 404, ""},
		{"case=a garbled peer address gets 404", "nonsense", "/debug/pprof/", 404, ""},
		{"case=cmdline is never served", "127.0.0.1:5555", "/debug/pprof/cmdline", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			req.RemoteAddr = tc.remote
			req.Header.Set("X-Forwarded-For", "127.0.0.1")
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.status || !strings.Contains(string(body), tc.body) {
				t.Fatalf("got %d %.200q, want %d containing %q", rec.Code, body, tc.status, tc.body)
			}
			if tc.status == 404 && (strings.Contains(string(body), "goroutine") || strings.Contains(string(body), os.Args[0])) {
				t.Fatalf("a refused request must reveal neither profiles nor the command line: %.200q", body)
			}
		})
	}
}
