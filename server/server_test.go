package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
)

type fakeDB struct{ err error }

func (f fakeDB) Ping(context.Context) error { return f.err }

func newTestServer(t *testing.T, db Pinger) (*httptest.Server, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetFormatter(&logrus.JSONFormatter{})
	s, err := New(Config{
		Logger: log,
		DB:     db,
		Public: []Mounter{MounterFunc(func(r *mux.Router) {
			r.Handle("/panic", protect.RouteFunc(protect.Ops(), func(http.ResponseWriter, *http.Request) { panic("secret-value-in-panic") }))
			r.Handle("/items/{id}", protect.RouteFunc(protect.Ops(), func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })).Methods(http.MethodGet)
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.PublicHandler())
	t.Cleanup(ts.Close)
	return ts, &buf
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Config{})
	if err == nil || !strings.Contains(err.Error(), "Logger") || !strings.Contains(err.Error(), "DB") {
		t.Fatalf("want both problems reported, got %v", err)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	cases := []struct {
		name       string
		db         error
		path       string
		wantStatus int
		retryAfter bool
	}{
		{"case=healthz ignores db", errors.New("down"), "/healthz", 200, false},
		{"case=readyz ok", nil, "/readyz", 200, false},
		{"case=readyz db down", errors.New("down"), "/readyz", 503, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts, _ := newTestServer(t, fakeDB{err: tc.db})
			res, err := http.Get(ts.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.wantStatus)
			}
			if got := res.Header.Get("Retry-After") != ""; got != tc.retryAfter {
				t.Fatalf("Retry-After present=%v, want %v", got, tc.retryAfter)
			}
		})
	}
}

func TestPanicGivesPlain500WithoutStack(t *testing.T) {
	ts, logs := newTestServer(t, fakeDB{})
	res, err := http.Get(ts.URL + "/panic")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != 500 {
		t.Fatalf("status %d", res.StatusCode)
	}
	for _, bad := range []string{"goroutine", "secret-value-in-panic", ".go:"} {
		if strings.Contains(string(body), bad) || strings.Contains(logs.String(), bad) {
			t.Fatalf("response or log leaks %q: %s / %s", bad, body, logs)
		}
	}
	var e map[string]string
	if err := json.Unmarshal(body, &e); err != nil || e["error"] != "server_error" {
		t.Fatalf("want JSON server_error, got %s", body)
	}
}

func TestAccessLogLineHasRouteNotPathOrQuery(t *testing.T) {
	ts, logs := newTestServer(t, fakeDB{})
	res, err := http.Get(ts.URL + "/items/42?code=supersecretcode")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	res, err = http.Get(ts.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != 404 {
		t.Fatalf("unknown path status %d", res.StatusCode)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 log lines, got %d: %s", len(lines), logs)
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first["route"] != "/items/{id}" || first["status"] != float64(200) || first["request_id"] == "" || first["method"] != "GET" {
		t.Fatalf("bad access log line: %v", first)
	}
	if second["route"] != "unmatched" || second["status"] != float64(404) {
		t.Fatalf("bad 404 log line: %v", second)
	}
	if strings.Contains(logs.String(), "supersecretcode") {
		t.Fatal("query string leaked into the log")
	}
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}
