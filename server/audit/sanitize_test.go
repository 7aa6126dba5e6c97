package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ory/fosite"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/bulwark-auth/bulwark/server/audit"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// Bytes Postgres refuses in text and jsonb (invalid UTF-8: 22021, NUL:
// 22P05) must never keep an event out of the trail: on Postgres the row is
// there, sanitized; the memory store gets the same text.
func TestBadBytesNeverLoseTheEvent(t *testing.T) {
	stores := map[string]func(t *testing.T) storage.AuditStore{
		"postgres": func(t *testing.T) storage.AuditStore { return pgtest.NewStore(t) },
		"memory":   func(*testing.T) storage.AuditStore { return memory.New(memory.Config{}) },
	}
	cases := []struct {
		name, ua, detail, wantUA, wantDetail string
	}{
		{"case=0xff-user-agent", "curl/\xff8", "ok", "curl/\uFFFD8", "ok"},
		{"case=nul-user-agent", "curl/\x008", "ok", "curl/8", "ok"},
		{"case=nul-and-invalid-detail", "curl/8", "a\x00b\xc3(", "curl/8", "ab\uFFFD("},
		{"case=truncated-rune", "ua\xe2\x82", "\xe2\x82", "ua\uFFFD", "\uFFFD"},
	}
	for sname, open := range stores {
		t.Run("store="+sname, func(t *testing.T) {
			st := open(t)
			log, _ := test.NewNullLogger()
			sink := audit.NewSink(st, log, nil)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					info := &reqinfo.Info{ID: tc.name, RemoteIP: "192.0.2.1", UserAgent: tc.ua}
					ctx := reqinfo.With(context.Background(), info)
					sink.Record(ctx, storage.AuditEvent{
						Event: "probe", Actor: "unknown", Outcome: "failure",
						Details: map[string]string{"value\x00\xff": tc.detail},
					})
					evs, err := st.ListAudit(context.Background(), storage.AuditFilter{Event: "probe", Since: time.Now().Add(-time.Hour)})
					if err != nil {
						t.Fatal(err)
					}
					var got *storage.AuditEvent
					for _, e := range evs {
						if e.RequestID == tc.name {
							got = e
						}
					}
					if got == nil {
						t.Fatal("the event is missing from the trail")
					}
					if got.UserAgent != tc.wantUA || got.Details["value\uFFFD"] != tc.wantDetail {
						t.Fatalf("stored ua %q details %q", got.UserAgent, got.Details)
					}
					for _, v := range []string{got.UserAgent, got.Details["value\uFFFD"]} {
						if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
							t.Fatalf("stored value %q is not clean", v)
						}
					}
				})
			}
		})
	}
}

// Sanitize never touches the caller's map (it may be shared).
func TestSanitizeCopiesDetails(t *testing.T) {
	d := map[string]string{"k": "a\x00"}
	e := storage.AuditEvent{Details: d}
	audit.Sanitize(&e)
	if d["k"] != "a\x00" || e.Details["k"] != "a" {
		t.Fatalf("caller map %q, event %q", d, e.Details)
	}
}

// WithToken: the store takes the event with the access token, so the sink
// writes no second row; the log line is written once the mint succeeded.
// An event no store took is appended by the sink itself; a failed mint
// (issued not called) leaves no row.
func TestWithTokenStoresTheEventOnce(t *testing.T) {
	st := memory.New(memory.Config{})
	c := &storage.Client{ID: "svc", GrantTypes: []string{"client_credentials"}}
	if err := st.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	log, hook := test.NewNullLogger()
	sink := audit.NewSink(st, log, nil)
	issuedIDs := func() []string {
		evs, err := st.ListAudit(t.Context(), storage.AuditFilter{Event: "oauth.token.issued"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.RequestID)
		}
		return ids
	}
	mint := func(reqID string, withToken, succeed bool) {
		ctx := reqinfo.With(t.Context(), &reqinfo.Info{ID: reqID, RemoteIP: "192.0.2.1", UserAgent: "ua\x00"})
		mctx, issued := sink.WithToken(ctx, storage.AuditEvent{Event: "oauth.token.issued", ClientID: "svc", Outcome: "success"})
		if withToken {
			r := fosite.NewRequest()
			r.ID, r.Client, r.Session = reqID, c, storage.NewSession("svc")
			if err := st.CreateAccessTokenSession(mctx, "sig-"+reqID, r); err != nil {
				t.Fatal(err)
			}
		}
		if succeed {
			issued(mctx)
		}
	}

	mint("req-taken", true, true)
	if got := issuedIDs(); len(got) != 1 || got[0] != "req-taken" {
		t.Fatalf("after a mint that took the event: rows %q, want exactly req-taken", got)
	}
	evs, _ := st.ListAudit(t.Context(), storage.AuditFilter{Event: "oauth.token.issued"})
	if evs[0].UserAgent != "ua" || evs[0].SourceIP != "192.0.2.1" {
		t.Fatalf("the stored event was not shaped by the sink: %+v", evs[0])
	}
	if n := len(hook.AllEntries()); n != 1 {
		t.Fatalf("%d log lines, want 1", n)
	}
	mint("req-not-taken", false, true)
	if got := issuedIDs(); len(got) != 2 || got[0] != "req-not-taken" {
		t.Fatalf("an event no store took was not appended by the sink: %q", got)
	}
	mint("req-failed", false, false)
	if got := issuedIDs(); len(got) != 2 {
		t.Fatalf("a failed mint left a row: %q", got)
	}
	if n := len(hook.AllEntries()); n != 2 {
		t.Fatalf("%d log lines, want 2", n)
	}
}
