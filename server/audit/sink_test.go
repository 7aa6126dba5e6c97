package audit

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

type store struct {
	mu     sync.Mutex
	events []storage.AuditEvent
	err    error
	panic  bool
	block  bool
	ctxErr error
}

func (s *store) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	if s.panic {
		panic("boom")
	}
	if s.block {
		<-ctx.Done()
		s.ctxErr = ctx.Err()
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.err != nil {
		return s.err
	}
	s.events = append(s.events, *e)
	return nil
}

func (s *store) ListAudit(context.Context, storage.AuditFilter) ([]*storage.AuditEvent, error) {
	return nil, errors.New("not used")
}

var fixed = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

func TestRecordWritesRowAndLogLine(t *testing.T) {
	t.Parallel()
	st := &store{}
	log, hook := test.NewNullLogger()
	s := NewSink(st, log, func() time.Time { return fixed })
	info := &reqinfo.Info{ID: "req-123", RemoteIP: "192.0.2.9", UserAgent: "curl/8"}
	info.SetClientID("svc")
	ctx, cancel := context.WithCancel(reqinfo.With(context.Background(), info))
	cancel() // the client hung up; the event must still be stored

	s.Record(ctx, storage.AuditEvent{Event: "client.created", Actor: "admin", SourceIP: "203.0.113.1", Outcome: "success", Details: map[string]string{"name": "billing"}})

	if len(st.events) != 1 {
		t.Fatalf("stored %d events", len(st.events))
	}
	got := st.events[0]
	if !got.Time.Equal(fixed) || got.RequestID != "req-123" || got.ClientID != "svc" || got.UserAgent != "curl/8" {
		t.Fatalf("stored %+v", got)
	}
	if got.SourceIP != "203.0.113.1" {
		t.Fatalf("caller's SourceIP overwritten: %q", got.SourceIP)
	}
	entries := hook.AllEntries()
	if len(entries) != 1 {
		t.Fatalf("%d log lines", len(entries))
	}
	e := entries[0]
	if e.Level != logrus.InfoLevel || e.Data["audit"] != true || e.Data["event"] != "client.created" || e.Data["request_id"] != "req-123" {
		t.Fatalf("log line %+v", e.Data)
	}
}

func TestRecordFailuresNeverReachCaller(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		st   *store
	}{
		{"case=store-error", &store{err: errors.New("db down")}},
		{"case=store-panics", &store{panic: true}},
		{"case=store-hangs", &store{block: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log, hook := test.NewNullLogger()
			s := NewSink(tc.st, log, nil)
			s.timeout = 50 * time.Millisecond
			s.Record(context.Background(), storage.AuditEvent{Event: "login", Outcome: "failure"})
			last := hook.LastEntry()
			if last == nil || last.Level != logrus.ErrorLevel {
				t.Fatalf("failure not logged: %+v", last)
			}
			if tc.st.block && !errors.Is(tc.st.ctxErr, context.DeadlineExceeded) {
				t.Fatalf("hanging store saw %v, want a deadline", tc.st.ctxErr)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in     string
		secret bool
	}{
		{"bwk_ABCDEFGHIJKL_0123456789012345678901234567890123456789012abcdef", true},
		{"Bearer bwk_ABCDEFGHIJKL_x", true},
		{"bwk_ABCDEFGHIJKL_…", false}, // apikey.Key.Redacted()
		{"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig", true},
		{"Bearer eyJhbGciOiJFUzI1NiJ9", true},
		{"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", true},
		{"prefix $argon2id$v=19$...", true},
		{"alice", false},
		{"client_credentials", false},
		{"ABCDEFGHIJKL", false},
		{"", false},
	}
	for _, tc := range cases {
		if got := LooksSecret(tc.in); got != tc.secret {
			t.Fatalf("case=%q: LooksSecret %v, want %v", tc.in, got, tc.secret)
		}
	}

	st := &store{}
	log, hook := test.NewNullLogger()
	details := map[string]string{"grant": "client_credentials", "token": "eyJhbGciOi.x.y", "eyJkey": "v"}
	NewSink(st, log, nil).Record(context.Background(), storage.AuditEvent{
		Event: "token.issued", Subject: "bwk_ABCDEFGHIJKL_secretsecret", UserAgent: "Bearer eyJ...", Details: details,
	})
	got := st.events[0]
	if got.Subject != Redacted || got.UserAgent != Redacted || got.Details["token"] != Redacted || got.Details["grant"] != "client_credentials" || got.Details[Redacted] != "v" {
		t.Fatalf("stored %+v", got)
	}
	if details["token"] != "eyJhbGciOi.x.y" {
		t.Fatal("Scrub modified the caller's map")
	}
	if d := hook.LastEntry().Data; d["details.token"] != Redacted || d["details.grant"] != "client_credentials" {
		t.Fatalf("log line details %v", d)
	}
}

// The log line must not collide with logrus's own keys (a "time" field
// becomes "fields.time" in JSON) and must read as key=value in text, not
// as a Go map.
func TestLogLineFormat(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run("case="+format, func(t *testing.T) {
			var buf bytes.Buffer
			log := logrus.New()
			log.SetOutput(&buf)
			if format == "json" {
				log.SetFormatter(&logrus.JSONFormatter{})
			} else {
				log.SetFormatter(&logrus.TextFormatter{DisableColors: true})
			}
			var seen []error
			sink := NewSink(&store{}, log, nil, WithObserver(func(_ *storage.AuditEvent, err error) { seen = append(seen, err) }))
			sink.Record(context.Background(), storage.AuditEvent{Event: "signing_key.active", Details: map[string]string{"kid": "k1", "alg": "ES256"}})
			line := buf.String()
			for _, bad := range []string{"fields.time", "map["} {
				if strings.Contains(line, bad) {
					t.Fatalf("log line contains %q: %s", bad, line)
				}
			}
			want := `details.kid=k1`
			if format == "json" {
				want = `"details.kid":"k1"`
			}
			if !strings.Contains(line, want) || !strings.Contains(line, "event_time") {
				t.Fatalf("log line lacks %s or event_time: %s", want, line)
			}
			if len(seen) != 1 || seen[0] != nil {
				t.Fatalf("observer saw %v", seen)
			}
		})
	}
}
