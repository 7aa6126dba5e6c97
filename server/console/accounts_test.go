package console_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/pquerna/otp/totp"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/server/audit"
	"github.com/bulwark-auth/bulwark/server/console"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

var (
	enrolSecretRE  = regexp.MustCompile(`id="totp-secret" class="secret" type="text" value="([A-Z2-7]+)"`)
	enrolPendingRE = regexp.MustCompile(`name="pending" value="([^"]+)"`)
)

// Concurrent enrolments (two tabs, two replicas) must not overwrite each
// other: exactly one wins and its secret is the one stored.
func TestConcurrentTOTPEnrolmentsOneWins(t *testing.T) {
	const n = 8
	e := newEnv(t)
	// Force the worst interleaving: every enrolment has read the user (not
	// enrolled) before any of them writes.
	stall := &stallingStore{ConsoleStore: e.store, n: n, release: make(chan struct{})}
	serveConsole(t, e, stall)
	e.addUser("root", allScopes...)
	b := e.browser()
	b.login("root")

	var forms []url.Values
	var secrets []string
	codes := map[string]bool{}
	for len(forms) < n {
		p := b.get("/admin/account")
		sec, pend := enrolSecretRE.FindStringSubmatch(p.body), enrolPendingRE.FindStringSubmatch(p.body)
		if sec == nil || pend == nil {
			t.Fatalf("account page lacks an enrolment form (status %d)", p.status)
		}
		code, err := totp.GenerateCode(sec[1], e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if codes[code] {
			continue // the per-user replay guard would refuse a repeated code
		}
		codes[code] = true
		csrf := csrfRE.FindStringSubmatch(p.body)[1]
		forms = append(forms, url.Values{"csrf_token": {csrf}, "pending": {pend[1]}, "code": {code}})
		secrets = append(secrets, sec[1])
	}
	statuses := storagetest.Together(n, func(i int) int {
		return b.post("/admin/account/totp", forms[i]).status
	})
	winners := storagetest.Count(statuses, func(st int) bool { return st == http.StatusOK })
	losers := storagetest.Count(statuses, func(st int) bool { return st == http.StatusConflict })
	if winners != 1 || losers != n-1 {
		t.Fatalf("statuses %v: want one 200 and %d 409", statuses, n-1)
	}
	u, err := e.store.UserByID(context.Background(), "u-root")
	if err != nil {
		t.Fatal(err)
	}
	opened, err := e.box.Open(u.TOTPSecretSealed, []byte("u-root"))
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range statuses {
		if (st == http.StatusOK) != (string(opened) == secrets[i]) {
			t.Fatalf("stored secret is not the winner's (winner %d)", i)
		}
	}
}

// stallingStore holds the first n writes of a TOTP secret until all n
// have arrived, then lets them race.
type stallingStore struct {
	console.ConsoleStore
	n       int64
	arrived atomic.Int64
	release chan struct{}
}

func (s *stallingStore) UpdateUser(ctx context.Context, u *storage.User, expect int64) error {
	if len(u.TOTPSecretSealed) > 0 {
		if k := s.arrived.Add(1); k == s.n {
			close(s.release)
		} else if k < s.n {
			select {
			case <-s.release:
			case <-ctx.Done():
			case <-time.After(30 * time.Second): // a safety net, not a timing assumption
			}
		}
	}
	return s.ConsoleStore.UpdateUser(ctx, u, expect)
}

// serveConsole replaces e's console with one on store, served behind the
// request-facts middleware the server puts in front of it.
func serveConsole(t *testing.T, e *env, store console.ConsoleStore) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	sink := audit.NewSink(e.store, log, e.clock.Now)
	con, err := console.New(console.Config{
		Service: e.svc, Store: store, Hasher: e.hasher, Sealer: e.box, Now: e.clock.Now, Logger: log,
		Audit: sink.Record, Issuer: "https://id.example.test",
	})
	if err != nil {
		t.Fatal(err)
	}
	e.console = con
	withRequestFacts(t, e)
}

// Failed sign-ins are audit events with an unknown actor, the source, the
// step and a reason, and never what was typed.
func TestFailedSignInsAreAuditedWithoutSecrets(t *testing.T) {
	e := newEnv(t)
	withRequestFacts(t, e)
	root := e.addUser("root", allScopes...)
	typed := []string{"Wrong-Password-0123456789", "my-password-typed-as-username"}
	b := e.browser()
	if p := b.submit("/admin/login", "/admin/login", url.Values{"username": {"root"}, "password": {typed[0]}}); p.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", p.status)
	}
	if p := b.submit("/admin/login", "/admin/login", url.Values{"username": {typed[1]}, "password": {typed[0]}}); p.status != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", p.status)
	}

	// The TOTP step: enrol, then sign in with a wrong code.
	a := e.browser()
	a.login("root")
	p := a.get("/admin/account")
	sec := enrolSecretRE.FindStringSubmatch(p.body)
	code, _ := totp.GenerateCode(sec[1], e.clock.Now())
	if p := a.post("/admin/account/totp", url.Values{"csrf_token": {csrfRE.FindStringSubmatch(p.body)[1]},
		"pending": {enrolPendingRE.FindStringSubmatch(p.body)[1]}, "code": {code}}); p.status != http.StatusOK {
		t.Fatalf("enrol: %d", p.status)
	}
	e.clock.Advance(2 * time.Minute)
	c := e.browser()
	c.submit("/admin/login", "/admin/login", url.Values{"username": {"root"}, "password": {adminPassword}})
	wrongCode, _ := totp.GenerateCode(sec[1], e.clock.Now().Add(-time.Hour))
	typed = append(typed, wrongCode, adminPassword)
	if p := c.submit("/admin/login/totp", "/admin/login/totp", url.Values{"code": {wrongCode}}); p.status != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", p.status)
	}

	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Event: console.EventLogin})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"password/wrong_password": root.ID, "password/unknown_user": "", "totp/wrong_code": root.ID}
	for _, ev := range evs {
		if ev.Outcome != "failure" {
			continue
		}
		key := ev.Details["step"] + "/" + ev.Details["reason"]
		subj, ok := want[key]
		if !ok {
			t.Fatalf("unexpected failure event %q", key)
		}
		if ev.Actor != "unknown" || ev.Subject != subj || ev.SourceIP == "" {
			t.Fatalf("event %s: actor %q subject %q source %q", key, ev.Actor, ev.Subject, ev.SourceIP)
		}
		delete(want, key)
		for _, s := range typed {
			for _, v := range append([]string{ev.Actor, ev.Subject, ev.UserAgent}, mapValues(ev.Details)...) {
				if strings.Contains(v, s) {
					t.Fatalf("event %s holds something typed", key)
				}
			}
		}
	}
	if len(want) != 0 {
		t.Fatalf("missing failure events: %v", want)
	}
}

// withRequestFacts serves e's console behind the request-facts middleware
// the server puts in front of it (source address, user agent), which the
// bare test router lacks.
func withRequestFacts(t *testing.T, e *env) {
	r := mux.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			host, _, _ := net.SplitHostPort(req.RemoteAddr)
			info := &reqinfo.Info{ID: "req", RemoteIP: host, UserAgent: req.UserAgent()}
			next.ServeHTTP(w, req.WithContext(reqinfo.With(req.Context(), info)))
		})
	})
	e.console.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e.srv = srv
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
