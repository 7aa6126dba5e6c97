package main

// Lockouts are cluster-wide and counted before they are checked (issue 9
// item 6, issue 10 "Lockouts are cluster-wide"): two replicas on one
// Postgres database, real HTTP, bursts released together. Every burst comes
// from distinct forwarded addresses (the test listener is a trusted proxy),
// so the per-IP rate limits and blocks stay out of the way and only the
// per-account limit can stop it.

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

const (
	lockRootPassword = "root-password-0123456789-abcdef"
	// lockLimit is the guards' default LockAfter.
	lockLimit = 10
	lockBurst = 40
)

// lockPair is two replicas on one database, plus the master secrets they
// share (to seal a TOTP secret the way the console does).
type lockPair struct {
	reps    [2]*e2eServer
	secrets [][]byte
}

// startLockPair starts two replicas that trust 127.0.0.1 as a proxy and
// seed an admin user "root" besides the usual clients and alice.
func startLockPair(t *testing.T) *lockPair {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	seed := filepath.Join(t.TempDir(), "seed.yaml")
	doc := e2eSeed + "  - username: root\n    password: " + lockRootPassword + "\n    admin_scopes: [admin:users]\n"
	if err := os.WriteFile(seed, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &lockPair{}
	opt := func(c *config) {
		c.SeedFile = seed
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		p.secrets = c.Secrets
	}
	p.reps[0] = startE2E(t, dsn, opt)
	p.reps[1] = startE2E(t, dsn, opt)
	return p
}

// enrolTOTP gives root a TOTP secret, sealed as the console seals it.
func (p *lockPair) enrolTOTP(t *testing.T) (userID, secret string) {
	t.Helper()
	ctx := context.Background()
	store := p.reps[0].app.store
	u, err := store.UserByUsername(ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "t", AccountName: "root"})
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(p.secrets)
	if err != nil {
		t.Fatal(err)
	}
	if u.TOTPSecretSealed, err = box.Seal([]byte(key.Secret()), []byte(u.ID)); err != nil {
		t.Fatal(err)
	}
	if err := store.UpdateUser(ctx, u, u.Version); err != nil {
		t.Fatal(err)
	}
	return u.ID, key.Secret()
}

// forwarded is the i-th distinct client address of a burst.
func forwarded(i int) string { return fmt.Sprintf("198.18.%d.%d", i/250, i%250+1) }

// answer is what one request of a burst got.
type answer struct {
	status   int
	location string
	err      error
}

// browser is one person's cookie jar, coming from one forwarded address;
// it does not follow redirects, so each answer can be checked.
type browser struct {
	t   *testing.T
	c   *http.Client
	xff string
}

func newBrowser(t *testing.T, xff string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, xff: xff, c: &http.Client{
		Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) do(method, target string, form url.Values) (answer, string) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		return answer{err: err}, ""
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("X-Forwarded-For", b.xff)
	res, err := b.c.Do(req)
	if err != nil {
		return answer{err: err}, ""
	}
	defer res.Body.Close()
	page, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, location: res.Header.Get("Location")}, string(page)
}

// formPost fetches page (for its hidden fields) and posts form to it.
func (b *browser) formPost(page string, form url.Values) answer {
	a, pageHTML := b.do(http.MethodGet, page, nil)
	if a.err != nil || a.status != http.StatusOK {
		b.t.Errorf("GET %s: %d %v", page, a.status, a.err)
		return a
	}
	for _, f := range e2eHidden.FindAllStringSubmatch(pageHTML, -1) {
		form.Set(f[1], html.UnescapeString(f[2]))
	}
	a, _ = b.do(http.MethodPost, page, form)
	return a
}

// consolePassword runs the console's password step on s.
func (b *browser) consolePassword(s *e2eServer, user, pass string) answer {
	return b.formPost(s.adminURL+"/admin/login", url.Values{"username": {user}, "password": {pass}})
}

// consoleTOTP runs the console's TOTP step on s.
func (b *browser) consoleTOTP(s *e2eServer, code string) answer {
	return b.formPost(s.adminURL+"/admin/login/totp", url.Values{"code": {code}})
}

// wrongCode is a six-digit code that is not valid around now.
func wrongCode(t *testing.T, secret string) string {
	now := time.Now()
	for n := 0; ; n++ {
		c := fmt.Sprintf("%06d", n)
		valid := false
		for _, d := range []time.Duration{-60 * time.Second, -30 * time.Second, 0, 30 * time.Second, 60 * time.Second} {
			if g, err := totp.GenerateCode(secret, now.Add(d)); err != nil {
				t.Fatal(err)
			} else if g == c {
				valid = true
			}
		}
		if !valid {
			return c
		}
	}
}

func counts(t *testing.T, out []answer) map[int]int {
	t.Helper()
	m := map[int]int{}
	for _, a := range out {
		if a.err != nil {
			t.Fatalf("request failed: %v", a.err)
		}
		if a.status >= 500 {
			t.Fatalf("a burst request got %d", a.status)
		}
		m[a.status]++
	}
	return m
}

// auditCount counts audit events of event whose details match want.
func auditCount(t *testing.T, s *e2eServer, event string, want map[string]string) int {
	t.Helper()
	events, err := s.app.store.ListAudit(context.Background(), storage.AuditFilter{Event: event, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
next:
	for _, e := range events {
		for k, v := range want {
			if e.Details[k] != v {
				continue next
			}
		}
		n++
	}
	return n
}

// A TOTP code is accepted once across the cluster: of six pending sign-ins
// spread over two replicas that submit the same valid code together, one
// signs in; and a code accepted by replica A is refused by replica B.
func TestE2ELockoutTOTPCodeOnceAcrossReplicas(t *testing.T) {
	p := startLockPair(t)
	_, secret := p.enrolTOTP(t)

	const n = 6
	browsers := make([]*browser, n)
	for i := range browsers {
		browsers[i] = newBrowser(t, forwarded(i))
		if a := browsers[i].consolePassword(p.reps[i%2], "root", lockRootPassword); a.location != "/admin/login/totp" {
			t.Fatalf("password step %d: %d %q", i, a.status, a.location)
		}
	}
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out := storagetest.Together(n, func(i int) answer { return browsers[i].consoleTOTP(p.reps[i%2], code) })
	c := counts(t, out)
	if won := storagetest.Count(out, func(a answer) bool { return a.location == "/admin/" }); won != 1 || c[http.StatusUnauthorized] != n-1 {
		t.Fatalf("same code from %d sign-ins on two replicas: %d signed in, answers %v; want exactly 1 and %d refusals", n, won, c, n-1)
	}

	// Sequentially: the next step's code (valid now, one step of skew) is
	// accepted by A and then refused by B.
	next, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	a, b := newBrowser(t, forwarded(100)), newBrowser(t, forwarded(101))
	a.consolePassword(p.reps[0], "root", lockRootPassword)
	b.consolePassword(p.reps[1], "root", lockRootPassword)
	if got := a.consoleTOTP(p.reps[0], next); got.location != "/admin/" {
		t.Fatalf("replica A refused a fresh code: %d %q", got.status, got.location)
	}
	if got := b.consoleTOTP(p.reps[1], next); got.status != http.StatusUnauthorized {
		t.Fatalf("replica B accepted the code A had accepted: %d %q", got.status, got.location)
	}
}

// 40 wrong console passwords for one admin, from 40 addresses, over two
// replicas, released together: exactly the limit are compared (401, each
// audited as a password failure), the rest are refused unchecked (429),
// and then even the right password is refused.
func TestE2ELockoutConsolePasswordBurst(t *testing.T) {
	p := startLockPair(t)
	out := storagetest.Together(lockBurst, func(i int) answer {
		return newBrowser(t, forwarded(i)).consolePassword(p.reps[i%2], "root", fmt.Sprintf("wrong-%d", i))
	})
	c := counts(t, out)
	if c[http.StatusUnauthorized] != lockLimit || c[http.StatusTooManyRequests] != lockBurst-lockLimit {
		t.Fatalf("answers %v; want exactly %d × 401 and %d × 429", c, lockLimit, lockBurst-lockLimit)
	}
	if n := auditCount(t, p.reps[0], "console.login", map[string]string{"step": "password", "reason": "wrong_password"}); n != lockLimit {
		t.Fatalf("%d passwords compared, want %d", n, lockLimit)
	}
	if a := newBrowser(t, forwarded(200)).consolePassword(p.reps[1], "root", lockRootPassword); a.status != http.StatusTooManyRequests {
		t.Fatalf("the right password on a locked account: %d %q", a.status, a.location)
	}
}

// 40 wrong TOTP codes from four pending sign-ins over two replicas,
// released together: the per-sign-in limit (5) and the per-user limit (10)
// are counted before the code is checked, so exactly 10 codes are checked
// and afterwards the right code is refused.
func TestE2ELockoutTOTPBurst(t *testing.T) {
	p := startLockPair(t)
	_, secret := p.enrolTOTP(t)
	const sessions = 4
	browsers := make([]*browser, sessions)
	for i := range browsers {
		browsers[i] = newBrowser(t, forwarded(i))
		if a := browsers[i].consolePassword(p.reps[i%2], "root", lockRootPassword); a.location != "/admin/login/totp" {
			t.Fatalf("password step %d: %d %q", i, a.status, a.location)
		}
	}
	// Each request needs the pending sign-in's CSRF token; fetch them
	// first so that only the POSTs race.
	csrf := make([]string, sessions)
	for i, b := range browsers {
		_, pageHTML := b.do(http.MethodGet, p.reps[0].adminURL+"/admin/login/totp", nil)
		m := e2eHidden.FindStringSubmatch(pageHTML)
		if m == nil {
			t.Fatalf("no csrf token on the TOTP page of sign-in %d", i)
		}
		csrf[i] = html.UnescapeString(m[2])
	}
	bad := wrongCode(t, secret)
	out := storagetest.Together(lockBurst, func(i int) answer {
		// The sign-in's cookies, a distinct address per request (the
		// per-IP rate limit is not what this test is about).
		b := &browser{t: t, c: browsers[i%sessions].c, xff: forwarded(1000 + i)}
		a, _ := b.do(http.MethodPost, p.reps[i%2].adminURL+"/admin/login/totp",
			url.Values{"csrf_token": {csrf[i%sessions]}, "code": {bad}})
		return a
	})
	c := counts(t, out)
	if c[http.StatusUnauthorized] != lockLimit {
		t.Fatalf("answers %v; want exactly %d codes checked (401), the rest refused unchecked", c, lockLimit)
	}
	if n := auditCount(t, p.reps[1], "console.login", map[string]string{"step": "totp", "reason": "wrong_code"}); n != lockLimit {
		t.Fatalf("%d TOTP codes checked, want %d", n, lockLimit)
	}
	b := newBrowser(t, forwarded(300))
	if a := b.consolePassword(p.reps[1], "root", lockRootPassword); a.location != "/admin/login/totp" {
		t.Fatalf("password step after the burst: %d %q", a.status, a.location)
	}
	good, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if a := b.consoleTOTP(p.reps[0], good); a.location != "/admin/login?m=totp_locked" {
		t.Fatalf("the right code on a locked second factor: %d %q", a.status, a.location)
	}
}

// The public login: one account attacked from 40 addresses over two
// replicas is stopped by the per-account limit after exactly 10 password
// checks; unknown usernames are counted the same way.
func TestE2ELockoutPublicLoginBurst(t *testing.T) {
	p := startLockPair(t)
	for _, user := range []string{"alice", "nobody-here"} {
		t.Run("user="+user, func(t *testing.T) {
			out := storagetest.Together(lockBurst, func(i int) answer {
				return newBrowser(t, forwarded(i)).formPost(p.reps[i%2].issuer+"/login",
					url.Values{"username": {user}, "password": {fmt.Sprintf("wrong-%d", i)}})
			})
			c := counts(t, out)
			if c[http.StatusUnauthorized] != lockLimit || c[http.StatusTooManyRequests] != lockBurst-lockLimit {
				t.Fatalf("answers %v; want exactly %d × 401 and %d × 429", c, lockLimit, lockBurst-lockLimit)
			}
		})
	}
	if a := newBrowser(t, forwarded(200)).formPost(p.reps[0].issuer+"/login",
		url.Values{"username": {"alice"}, "password": {e2ePassword}}); a.status != http.StatusTooManyRequests {
		t.Fatalf("the right password on a locked account: %d", a.status)
	}
	// Another account from the same addresses is unaffected.
	if a := newBrowser(t, forwarded(0)).formPost(p.reps[1].issuer+"/login",
		url.Values{"username": {"root"}, "password": {lockRootPassword}}); a.status != http.StatusOK {
		t.Fatalf("another account after the burst: %d", a.status)
	}
}

// tokenTry asks s for a client_credentials token as client id with secret
// (client_secret_basic), from address xff.
func tokenTry(s *e2eServer, xff, id, secret string) answer {
	form := url.Values{"grant_type": {"client_credentials"}}.Encode()
	req, err := http.NewRequest(http.MethodPost, s.issuer+"/oauth2/token", strings.NewReader(form))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", xff)
	req.SetBasicAuth(id, secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return answer{status: res.StatusCode}
}

// A busy client's parallel requests with its right secret are never
// counted against it (only real Argon2id comparisons are, and a burst of
// the same secret costs one per replica), so they never lock it and leave
// its whole budget to catch guessing.
func TestE2ELockoutBusyClientNeverCounted(t *testing.T) {
	p := startLockPair(t)
	for round := range 2 { // cold caches, then warm
		out := storagetest.Together(lockBurst, func(i int) answer {
			return tokenTry(p.reps[i%2], forwarded(round*lockBurst+i), "svc", e2eSvcSecret)
		})
		if c := counts(t, out); c[http.StatusOK] != lockBurst {
			t.Fatalf("round %d: %d parallel requests with the right secret got %v; want all 200", round, lockBurst, c)
		}
	}
	for i := range lockLimit {
		if a := tokenTry(p.reps[i%2], forwarded(500+i), "svc", fmt.Sprintf("wrong-%d", i)); a.status != http.StatusUnauthorized {
			t.Fatalf("wrong secret %d after the busy rounds: %d, want 401 (the budget must be whole)", i+1, a.status)
		}
	}
	if a := tokenTry(p.reps[0], forwarded(600), "svc", "wrong-again"); a.status != http.StatusTooManyRequests {
		t.Fatalf("wrong secret past the limit: %d, want 429", a.status)
	}
}

// invalid_client on client_secret_basic: 40 wrong secrets for one client
// from 40 addresses over two replicas get exactly 10 checks (401
// invalid_client) and 30 refusals (429), then the right secret is refused
// too until the window ends.
func TestE2ELockoutClientSecretBurst(t *testing.T) {
	p := startLockPair(t)
	out := storagetest.Together(lockBurst, func(i int) answer {
		return tokenTry(p.reps[i%2], forwarded(i), "svc", fmt.Sprintf("wrong-secret-%d", i))
	})
	c := counts(t, out)
	if c[http.StatusUnauthorized] != lockLimit || c[http.StatusTooManyRequests] != lockBurst-lockLimit {
		t.Fatalf("answers %v; want exactly %d × 401 and %d × 429", c, lockLimit, lockBurst-lockLimit)
	}
	if a := tokenTry(p.reps[1], forwarded(200), "svc", e2eSvcSecret); a.status != http.StatusTooManyRequests {
		t.Fatalf("the right secret on a locked client: %d", a.status)
	}
	// Only that client is held back: another client from the same
	// address is still checked.
	if a := tokenTry(p.reps[0], forwarded(0), "web", "wrong"); a.status != http.StatusUnauthorized {
		t.Fatalf("another client from a burst address: %d, want 401", a.status)
	}
}
