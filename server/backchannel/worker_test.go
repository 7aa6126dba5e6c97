package backchannel

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/server/egress"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

// fakeSigner signs nothing: it renders the claims so the test can read them.
type fakeSigner struct{ jwt.Signer }

func (fakeSigner) Generate(_ context.Context, c jwt.MapClaims, h jwt.Mapper) (string, string, error) {
	typ := h.ToMap()["typ"]
	return "typ=" + typ.(string) + ";sub=" + c["sub"].(string) + ";aud=" + c["aud"].(string), "", nil
}

// answers is a Doer that answers with the queued statuses and records
// the bodies it was sent.
type answers struct {
	mu     sync.Mutex
	status []int
	bodies []string
}

func (a *answers) Do(req *http.Request) (int, []byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := new(strings.Builder)
	if req.Body != nil {
		buf := make([]byte, 4096)
		n, _ := req.Body.Read(buf)
		b.Write(buf[:n])
	}
	a.bodies = append(a.bodies, b.String())
	st := a.status[0]
	if len(a.status) > 1 {
		a.status = a.status[1:]
	}
	return st, nil, nil
}

type auditLog struct {
	mu  sync.Mutex
	evs []storage.AuditEvent
}

func (l *auditLog) record(_ context.Context, e storage.AuditEvent) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
}

func (l *auditLog) events() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.evs {
		out = append(out, e.Event+":"+e.Details["reason"]+e.Details["why"])
	}
	return out
}

// setup queues one logout for client rp on a memory store with a clock
// the test moves.
func setup(t *testing.T) (*memory.Store, *time.Time) {
	t.Helper()
	clock := time.Now().UTC()
	st := memory.New(memory.Config{Now: func() time.Time { return clock }})
	ctx := context.Background()
	if err := st.CreateClient(ctx, &storage.Client{ID: "rp", BackchannelLogoutURI: "https://rp.example/bc"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateLoginSession(ctx, &storage.LoginSession{Key: "k", Kind: "public", Subject: "alice", SID: "s1", ExpiresAt: clock.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.JoinLoginSession(ctx, "k", "rp"); err != nil {
		t.Fatal(err)
	}
	if n, err := st.QueueLogouts(ctx, storage.LogoutMatch{SID: "s1", Reason: "logout"}); err != nil || n != 1 {
		t.Fatalf("queue: %d %v", n, err)
	}
	return st, &clock
}

func TestWorkerRetriesWithBackoffThenDelivers(t *testing.T) {
	st, clock := setup(t)
	ans := &answers{status: []int{503, 500, 200}}
	log := &auditLog{}
	w, err := NewWorker(Config{Store: st, Signer: fakeSigner{}, Issuer: "https://op.example", HTTP: ans, Audit: log.record,
		Now: func() time.Time { return *clock }, RetryMin: time.Minute, RetryMax: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w.drain(ctx)
	// Not due before the backoff: nothing is sent.
	*clock = clock.Add(59 * time.Second)
	w.drain(ctx)
	if len(ans.bodies) != 1 {
		t.Fatalf("sent %d times before the first backoff ended", len(ans.bodies))
	}
	*clock = clock.Add(time.Second)
	w.drain(ctx)
	// The second backoff doubles, capped at RetryMax.
	*clock = clock.Add(89 * time.Second)
	w.drain(ctx)
	if len(ans.bodies) != 2 {
		t.Fatalf("sent %d times before the capped backoff ended", len(ans.bodies))
	}
	*clock = clock.Add(time.Second)
	w.drain(ctx)
	if n, _ := st.PendingLogouts(ctx); n != 0 || len(ans.bodies) != 3 {
		t.Fatalf("pending %d after %d attempts", n, len(ans.bodies))
	}
	form, err := url.ParseQuery(ans.bodies[2])
	if err != nil || form.Get("logout_token") != "typ=logout+jwt;sub=alice;aud=rp" {
		t.Fatalf("body %q", ans.bodies[2])
	}
	want := []string{"backchannel_logout.failed:bad_status", "backchannel_logout.failed:bad_status", "backchannel_logout.delivered:"}
	if got := log.events(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("audit %v", got)
	}
}

func TestWorkerAbandonsAtMaxAge(t *testing.T) {
	st, clock := setup(t)
	ans := &answers{status: []int{500}}
	log := &auditLog{}
	w, err := NewWorker(Config{Store: st, Signer: fakeSigner{}, Issuer: "https://op.example", HTTP: ans, Audit: log.record,
		Now: func() time.Time { return *clock }, RetryMin: time.Minute, RetryMax: time.Minute, MaxAge: 150 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 4 {
		w.drain(ctx)
		*clock = clock.Add(time.Minute)
	}
	if n, _ := st.PendingLogouts(ctx); n != 0 {
		t.Fatalf("%d pending after the maximum age", n)
	}
	// Attempts at 0 and 60 s; the one at 120 s would be followed by one
	// after the maximum age, so it is the last.
	got := log.events()
	if len(ans.bodies) != 3 || got[len(got)-1] != "backchannel_logout.abandoned:maximum age reached" {
		t.Fatalf("%d attempts, audit %v", len(ans.bodies), got)
	}
}

func TestWorkerRateLimitsPerClient(t *testing.T) {
	st, clock := setup(t)
	ctx := context.Background()
	for _, k := range []string{"k2", "k3"} {
		if err := st.CreateLoginSession(ctx, &storage.LoginSession{Key: k, Kind: "public", Subject: "alice", SID: "s-" + k, ExpiresAt: clock.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.JoinLoginSession(ctx, k, "rp"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.QueueLogouts(ctx, storage.LogoutMatch{SID: "s-" + k}); err != nil {
			t.Fatal(err)
		}
	}
	ans := &answers{status: []int{200}}
	// One token per minute per client, no burst beyond one: the other
	// two rows are deferred (not failed) until the limiter has room.
	w, err := NewWorker(Config{Store: st, Signer: fakeSigner{}, Issuer: "https://op.example", HTTP: ans,
		Now: func() time.Time { return *clock }, ClientRate: 1.0 / 60, ClientBurst: 1, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	w.drain(ctx)
	if len(ans.bodies) != 1 {
		t.Fatalf("%d sent at once, want 1", len(ans.bodies))
	}
	for i := range 2 {
		*clock = clock.Add(time.Minute)
		w.drain(ctx)
		if len(ans.bodies) != i+2 {
			t.Fatalf("%d sent after %d minutes", len(ans.bodies), i+1)
		}
	}
	if n, _ := st.PendingLogouts(ctx); n != 0 {
		t.Fatalf("%d pending", n)
	}
}

func TestWorkerNeverDialsForbiddenAddresses(t *testing.T) {
	st, clock := setup(t)
	ctx := context.Background()
	c, _ := st.ClientByID(ctx, "rp")
	c.BackchannelLogoutURI = "https://169.254.169.254/latest/meta-data"
	if err := st.UpdateClient(ctx, c, c.Version); err != nil {
		t.Fatal(err)
	}
	log := &auditLog{}
	w, err := NewWorker(Config{Store: st, Signer: fakeSigner{}, Issuer: "https://op.example",
		HTTP: egress.New(egress.Options{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}), Audit: log.record,
		Now: func() time.Time { return *clock }})
	if err != nil {
		t.Fatal(err)
	}
	w.drain(ctx)
	if got := log.events(); len(got) != 1 || got[0] != "backchannel_logout.failed:forbidden_address" {
		t.Fatalf("audit %v", got)
	}
}

func TestNewWorkerReportsEveryProblem(t *testing.T) {
	_, err := NewWorker(Config{Timeout: time.Minute, Lease: time.Second, RetryMin: time.Hour, RetryMax: time.Minute, MaxAge: -1})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"store", "signer", "issuer", "HTTP", "lease", "maximum retry", "maximum age"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// namedSigner is fakeSigner that prefixes its name, so a test sees which
// signer made a token.
type namedSigner struct {
	fakeSigner
	name string
}

func (s namedSigner) Generate(ctx context.Context, c jwt.MapClaims, h jwt.Mapper) (string, string, error) {
	tok, sig, err := s.fakeSigner.Generate(ctx, c, h)
	return s.name + ":" + tok, sig, err
}

// TestWorkerSignsWithTheClientsIDTokenAlgorithm: a relying party
// registered for ES256 ID tokens gets ES256 logout tokens (§2.4: the keys
// of ID tokens); one registered for none gets the default signer's.
func TestWorkerSignsWithTheClientsIDTokenAlgorithm(t *testing.T) {
	for _, tc := range []struct{ alg, want string }{{"ES256", "es256"}, {"", "default"}, {"EdDSA", "default"}} {
		t.Run("case=alg="+tc.alg, func(t *testing.T) {
			st, clock := setup(t)
			ctx := context.Background()
			c, err := st.ClientByID(ctx, "rp")
			if err != nil {
				t.Fatal(err)
			}
			c.IDTokenSignedResponseAlg = tc.alg
			if err := st.UpdateClient(ctx, c, c.Version); err != nil {
				t.Fatal(err)
			}
			ans := &answers{status: []int{200}}
			w, err := NewWorker(Config{Store: st, Signer: namedSigner{name: "default"}, Issuer: "https://op.example", HTTP: ans,
				Signers: map[string]jwt.Signer{"ES256": namedSigner{name: "es256"}, "RS256": namedSigner{name: "rs256"}},
				Now:     func() time.Time { return *clock }})
			if err != nil {
				t.Fatal(err)
			}
			w.drain(ctx)
			if len(ans.bodies) != 1 {
				t.Fatalf("sent %d logout tokens", len(ans.bodies))
			}
			form, err := url.ParseQuery(ans.bodies[0])
			if err != nil || !strings.HasPrefix(form.Get("logout_token"), tc.want+":") {
				t.Fatalf("logout token %q, want one from the %s signer", form.Get("logout_token"), tc.want)
			}
		})
	}
}
