package main

// End-to-end tests of the device authorization grant (RFC 8628) on the
// assembled server, real Postgres and real HTTP: golang.org/x/oauth2's
// DeviceAuth/DeviceAccessToken as the device, headless Chromium or a
// cookie-keeping HTTP client as the person at /device.

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// addDeviceClient registers a public device client (a TV app, a CLI)
// allowed the device grant and refresh tokens.
func addDeviceClient(t testing.TB, s *e2eServer, id string) *oauth2.Config {
	t.Helper()
	err := s.app.store.CreateClient(context.Background(), &storage.Client{
		ID: id, Name: "Living room TV",
		GrantTypes:              []string{deviceGrant, "refresh_token"},
		Scopes:                  []string{"openid", "profile", "offline_access"},
		TokenEndpointAuthMethod: storage.AuthMethodNone, ApplicationType: storage.AppTypeNative,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &oauth2.Config{
		ClientID: id, Scopes: []string{"openid", "profile", "offline_access"},
		Endpoint: oauth2.Endpoint{
			DeviceAuthURL: s.issuer + "/oauth2/device/auth", TokenURL: s.issuer + "/oauth2/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

var deviceHidden = regexp.MustCompile(`name="(csrf_token|return_to|user_code|confirm)" value="([^"]*)"`)

// devicePerson is a person with a browser (cookies) at /device.
type devicePerson struct {
	t      testing.TB
	issuer string
	c      *http.Client
}

func newDevicePerson(t testing.TB, s *e2eServer) *devicePerson {
	jar, _ := cookiejar.New(nil)
	return &devicePerson{t: t, issuer: s.issuer, c: &http.Client{Jar: jar}}
}

// page fetches or posts and returns the final status, body and hidden fields.
func (p *devicePerson) page(res *http.Response, err error) (int, string, url.Values) {
	p.t.Helper()
	if err != nil {
		p.t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	form := url.Values{}
	for _, m := range deviceHidden.FindAllStringSubmatch(string(b), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	return res.StatusCode, string(b), form
}

// enter opens /device and submits code; it returns the answer.
func (p *devicePerson) enter(code string) (int, string, url.Values) {
	p.t.Helper()
	status, body, form := p.page(p.c.Get(p.issuer + "/device"))
	if status != http.StatusOK || !strings.Contains(body, `action="/device"`) {
		p.t.Fatalf("/device: %d %.300s", status, body)
	}
	form.Set("user_code", code)
	return p.page(p.c.PostForm(p.issuer+"/device", form))
}

// toDecision enters code, signs in as alice when asked, and returns the
// decision form.
func (p *devicePerson) toDecision(code string) url.Values {
	p.t.Helper()
	status, body, form := p.enter(code)
	if strings.Contains(body, `action="/login"`) {
		form.Set("username", "alice")
		form.Set("password", e2ePassword)
		status, body, form = p.page(p.c.PostForm(p.issuer+"/login", form))
	}
	if status != http.StatusOK || !strings.Contains(body, `action="/device/decision"`) {
		p.t.Fatalf("expected the decision page, got %d: %.400s", status, body)
	}
	if !strings.Contains(body, "Only continue if you started this sign-in yourself") || !strings.Contains(body, "Living room TV") {
		p.t.Fatalf("decision page lacks the warning or the client name: %.600s", body)
	}
	return form
}

func (p *devicePerson) decide(form url.Values, decision string) (int, string) {
	p.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("decision", decision)
	status, body, _ := p.page(p.c.PostForm(p.issuer+"/device/decision", f))
	return status, body
}

// deviceAuth asks for codes as the device with x/oauth2.
func deviceAuth(t testing.TB, cfg *oauth2.Config) *oauth2.DeviceAuthResponse {
	t.Helper()
	da, err := cfg.DeviceAuth(context.Background())
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	if !regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(da.UserCode) {
		t.Fatalf("user code %q is not XXXX-XXXX from the RFC 8628 alphabet", da.UserCode)
	}
	if da.DeviceCode == "" || da.Interval != 5 || da.VerificationURIComplete != da.VerificationURI+"?user_code="+da.UserCode {
		t.Fatalf("device authorization response: %+v", da)
	}
	return da
}

// poll is one raw token request for the device code.
func (s *e2eServer) poll(clientID, deviceCode string) (int, map[string]any) {
	return s.post("/oauth2/token", url.Values{"grant_type": {deviceGrant}, "client_id": {clientID}, "device_code": {deviceCode}}, "", "")
}

// TestE2EDeviceFlowBrowser: x/oauth2 is the device; headless Chromium
// opens verification_uri, types the code in lower case without the dash,
// signs in and approves. The device gets an access token (verified against
// the JWKS), an ID token (verified with go-oidc) and a refresh token that
// works.
func TestE2EDeviceFlowBrowser(t *testing.T) {
	bin := chromiumBinary(t)
	s := startE2E(t, pgtest.NewDatabase(t))
	cfg := addDeviceClient(t, s, "tv")
	da := deviceAuth(t, cfg)

	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := cfg.DeviceAccessToken(context.Background(), da)
		done <- result{tok, err}
	}()

	c := newChrome(t, bin, 90*time.Second)
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
	c.do("open verification_uri", chromedp.Navigate(da.VerificationURI), chromedp.WaitVisible(chromedp.ID("user_code")),
		chromedp.SendKeys(chromedp.ID("user_code"), typed))
	c.submit("enter the code", `form button[type="submit"]`)
	c.do("sign in", chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"), chromedp.SendKeys(chromedp.ID("password"), e2ePassword))
	c.submit("sign in", `form button[type="submit"]`)
	consent, shown := c.text("main"), c.text("#user-code")
	if shown != da.UserCode || !strings.Contains(consent, "Living room TV") || !strings.Contains(consent, "Only continue if you started this sign-in yourself") {
		t.Fatalf("decision page: code %q, text %.500s", shown, consent)
	}
	c.submit("approve", `button[value="approve"]`)
	if h := c.text("h1"); h != "Device connected" {
		t.Fatalf("after approving: h1 %q", h)
	}

	var res result
	select {
	case res = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the device got no token within a minute of the approval")
	}
	if res.err != nil {
		t.Fatalf("DeviceAccessToken: %v", res.err)
	}
	claims := s.verifyAccessToken(res.tok.AccessToken)
	if claims["client_id"] != "tv" || claims["sub"] == "" || claims["scope"] != "openid profile offline_access" {
		t.Fatalf("access token claims: %v", claims)
	}
	raw, _ := res.tok.Extra("id_token").(string)
	provider, err := oidc.NewProvider(context.Background(), s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: "tv"}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("go-oidc rejects the ID token: %v", err)
	}
	var idc struct {
		Username string `json:"preferred_username"`
		AuthTime int64  `json:"auth_time"`
	}
	if err := idt.Claims(&idc); err != nil || idc.Username != "alice" || idc.AuthTime == 0 || idt.Subject != claims["sub"] {
		t.Fatalf("ID token claims: %+v sub %s (%v)", idc, idt.Subject, err)
	}
	if res.tok.RefreshToken == "" {
		t.Fatal("no refresh token for a client with refresh_token and offline_access")
	}
	// The refresh token works through x/oauth2's token source.
	expired := &oauth2.Token{AccessToken: res.tok.AccessToken, RefreshToken: res.tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}
	fresh, err := cfg.TokenSource(context.Background(), expired).Token()
	if err != nil || fresh.AccessToken == res.tok.AccessToken {
		t.Fatalf("refresh: %v", err)
	}
	if out := s.introspect(fresh.AccessToken); out["active"] != true || out["client_id"] != "tv" {
		t.Fatalf("introspection of the refreshed token: %v", out)
	}
	// The code is spent.
	if status, out := s.poll("tv", da.DeviceCode); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("poll after issue: %d %v", status, out)
	}
}

// TestE2EDeviceTokensIssuedOnce releases 20 polls of one approved device
// code together: exactly one gets tokens, the others a clean invalid_grant.
func TestE2EDeviceTokensIssuedOnce(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn, func(c *config) { c.RateLimits, c.ClientRateLimits = nil, nil })
	cfg := addDeviceClient(t, s, "tv")
	da := deviceAuth(t, cfg)
	p := newDevicePerson(t, s)
	if status, body := p.decide(p.toDecision(da.UserCode), "approve"); status != http.StatusOK || !strings.Contains(body, "Device connected") {
		t.Fatalf("approve: %d %.300s", status, body)
	}
	type answer struct {
		status int
		body   map[string]any
	}
	answers := storagetest.Together(20, func(int) answer {
		status, out := s.poll("tv", da.DeviceCode)
		return answer{status, out}
	})
	ok := storagetest.Count(answers, func(a answer) bool { return a.status == http.StatusOK && a.body["access_token"] != nil })
	if ok != 1 {
		t.Fatalf("%d polls got tokens, want exactly 1: %v", ok, answers)
	}
	for _, a := range answers {
		if a.status >= 500 || (a.status != http.StatusOK && (a.status != http.StatusBadRequest || a.body["error"] != "invalid_grant")) {
			t.Fatalf("a losing poll answered %d %v", a.status, a.body)
		}
	}
	if n := countRows(t, dsn, `SELECT count(*) FROM token_sessions WHERE kind = 'access' AND client_id = 'tv'`); n != 1 {
		t.Fatalf("%d access tokens stored, want 1", n)
	}
}

// TestE2EDeviceApproveRacingDeny: the same person's approval and denial
// released together have exactly one outcome, and the device sees it.
func TestE2EDeviceApproveRacingDeny(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t), func(c *config) { c.RateLimits, c.ClientRateLimits = nil, nil })
	cfg := addDeviceClient(t, s, "tv")
	da := deviceAuth(t, cfg)
	p := newDevicePerson(t, s)
	form := p.toDecision(da.UserCode)
	statuses := storagetest.Together(20, func(i int) int {
		status, _ := p.decide(form, []string{"approve", "deny"}[i%2])
		return status
	})
	if n := storagetest.Count(statuses, func(s int) bool { return s == http.StatusOK }); n != 1 {
		t.Fatalf("%d decisions won, want 1: %v", n, statuses)
	}
	if n := storagetest.Count(statuses, func(s int) bool { return s == http.StatusConflict }); n != 19 {
		t.Fatalf("%d decisions refused with 409, want 19: %v", n, statuses)
	}
	list, err := s.app.store.ListDeviceAuthorizations(context.Background(), time.Now(), 0)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	status := string(list[0].Status)
	code, out := s.poll("tv", da.DeviceCode)
	switch status {
	case "approved":
		if code != http.StatusOK {
			t.Fatalf("approved, but the poll answered %d %v", code, out)
		}
	case "denied":
		if code != http.StatusBadRequest || out["error"] != "access_denied" {
			t.Fatalf("denied, but the poll answered %d %v", code, out)
		}
	default:
		t.Fatalf("status after the race: %q", status)
	}
}

// TestE2EDeviceDeniedPendingSlowDownExpired walks the other answers of
// RFC 8628 §3.5 through x/oauth2 and raw polls.
func TestE2EDeviceDeniedPendingSlowDownExpired(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	cfg := addDeviceClient(t, s, "tv")

	t.Run("pending then slow_down", func(t *testing.T) {
		da := deviceAuth(t, cfg)
		if status, out := s.poll("tv", da.DeviceCode); status != http.StatusBadRequest || out["error"] != "authorization_pending" {
			t.Fatalf("first poll: %d %v", status, out)
		}
		if status, out := s.poll("tv", da.DeviceCode); status != http.StatusBadRequest || out["error"] != "slow_down" {
			t.Fatalf("immediate second poll: %d %v", status, out)
		}
		list, err := s.app.store.ListDeviceAuthorizations(context.Background(), time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range list {
			if d.ClientID == "tv" && d.LastOutcome == storage.PollSlowDown && d.Interval != 10*time.Second {
				t.Fatalf("interval after slow_down: %s, want 10s", d.Interval)
			}
		}
	})

	t.Run("denied", func(t *testing.T) {
		da := deviceAuth(t, cfg)
		p := newDevicePerson(t, s)
		if status, body := p.decide(p.toDecision(strings.ToLower(da.UserCode)), "deny"); status != http.StatusOK || !strings.Contains(body, "Request denied") {
			t.Fatalf("deny: %d %.300s", status, body)
		}
		_, err := cfg.DeviceAccessToken(context.Background(), da)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "access_denied" {
			t.Fatalf("DeviceAccessToken after deny: %v", err)
		}
		// A denied code cannot be entered again.
		if status, body, _ := p.enter(da.UserCode); status != http.StatusBadRequest || !strings.Contains(body, "not valid") {
			t.Fatalf("entering a denied code: %d %.300s", status, body)
		}
	})

	t.Run("expired", func(t *testing.T) {
		da := deviceAuth(t, cfg)
		// Ten minutes pass.
		execSQL(t, dsn, `UPDATE device_authorizations SET expires_at = now() - interval '1 second' WHERE client_id = 'tv' AND status = 'pending'`)
		if status, out := s.poll("tv", da.DeviceCode); status != http.StatusBadRequest || out["error"] != "expired_token" {
			t.Fatalf("poll of an expired code: %d %v", status, out)
		}
		p := newDevicePerson(t, s)
		if status, body, _ := p.enter(da.UserCode); status != http.StatusBadRequest || !strings.Contains(body, "expired") {
			t.Fatalf("entering an expired code: %d %.300s", status, body)
		}
		// The janitor removes it.
		if _, err := s.app.store.DeleteExpired(context.Background(), time.Now(), 100); err != nil {
			t.Fatal(err)
		}
		if status, out := s.poll("tv", da.DeviceCode); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
			t.Fatalf("poll after the janitor: %d %v", status, out)
		}
	})
}

// TestE2EDeviceRefusals: clients without the grant, other clients' codes,
// discovery, and bad input (NUL, invalid UTF-8, duplicated parameters)
// answer clean 4xx and change nothing.
func TestE2EDeviceRefusals(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	cfg := addDeviceClient(t, s, "tv")
	addDeviceClient(t, s, "other-tv")

	res, err := http.Get(s.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc map[string]any
	_ = json.NewDecoder(res.Body).Decode(&disc)
	_ = res.Body.Close()
	grants, _ := json.Marshal(disc["grant_types_supported"])
	if disc["device_authorization_endpoint"] != s.issuer+"/oauth2/device/auth" || !strings.Contains(string(grants), deviceGrant) {
		t.Fatalf("discovery: %v %s", disc["device_authorization_endpoint"], grants)
	}

	// The web client is not registered for the device grant.
	if status, out := s.post("/oauth2/device/auth", url.Values{"scope": {"openid"}}, "web", e2eWebSecret); status != http.StatusBadRequest || out["error"] != "unauthorized_client" {
		t.Fatalf("device auth by a client without the grant: %d %v", status, out)
	}
	if status, out := s.post("/oauth2/device/auth", url.Values{"client_id": {"nobody"}}, "", ""); status != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Fatalf("unknown client: %d %v", status, out)
	}
	if status, out := s.post("/oauth2/device/auth", url.Values{"client_id": {"tv"}, "scope": {"admin"}}, "", ""); status != http.StatusBadRequest || out["error"] != "invalid_scope" {
		t.Fatalf("scope the client lacks: %d %v", status, out)
	}
	da := deviceAuth(t, cfg)
	if status, out := s.poll("other-tv", da.DeviceCode); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("another client's device code: %d %v", status, out)
	}
	if status, out := s.post("/oauth2/token", url.Values{"grant_type": {deviceGrant}, "client_id": {"web"}, "device_code": {da.DeviceCode}}, "web", e2eWebSecret); status != http.StatusBadRequest || out["error"] != "unauthorized_client" {
		t.Fatalf("device grant by a client without it: %d %v", status, out)
	}

	raw := func(path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.issuer+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res.StatusCode
	}
	before := countRows(t, dsn, `SELECT count(*) FROM device_authorizations`)
	for name, tc := range map[string]struct{ path, body string }{
		"NUL in scope":           {"/oauth2/device/auth", "client_id=tv&scope=openid%00"},
		"invalid UTF-8 in scope": {"/oauth2/device/auth", "client_id=tv&scope=%ff%fe"},
		"duplicated client_id":   {"/oauth2/device/auth", "client_id=tv&client_id=tv"},
		"duplicated scope":       {"/oauth2/device/auth", "client_id=tv&scope=openid&scope=profile"},
		"NUL in device_code":     {"/oauth2/token", "grant_type=" + url.QueryEscape(deviceGrant) + "&client_id=tv&device_code=ab%00cd"},
		"duplicated device_code": {"/oauth2/token", "grant_type=" + url.QueryEscape(deviceGrant) + "&client_id=tv&device_code=a&device_code=b"},
		"NUL in user_code":       {"/device", "user_code=BCDF%00GHJK"},
		"invalid UTF-8 in code":  {"/device", "user_code=%ff%ff"},
	} {
		if status := raw(tc.path, tc.body); status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, status)
		}
	}
	if after := countRows(t, dsn, `SELECT count(*) FROM device_authorizations`); after != before {
		t.Fatalf("bad input created device authorizations: %d -> %d", before, after)
	}
	// The device code of the refused polls is still pending.
	if status, out := s.poll("tv", da.DeviceCode); status != http.StatusBadRequest || (out["error"] != "authorization_pending" && out["error"] != "slow_down") {
		t.Fatalf("poll after bad input: %d %v", status, out)
	}
}

// TestE2EDeviceUserCodeGuessing: wrong codes from one address are limited
// (20 per window) and a right code gives its attempt back, so people
// entering their own codes behind one NAT never add up; entry forms are
// case- and dash-insensitive.
func TestE2EDeviceUserCodeGuessing(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	cfg := addDeviceClient(t, s, "tv")
	p := newDevicePerson(t, s)
	wrong := func() int {
		status, _, _ := p.enter("ZZZZ-ZZZZ")
		return status
	}
	for i := range 19 {
		if status := wrong(); status != http.StatusBadRequest {
			t.Fatalf("wrong code %d: %d", i+1, status)
		}
	}
	// Right codes, typed in every accepted shape, cost nothing.
	for _, shape := range []func(string) string{
		func(c string) string { return c },
		strings.ToLower,
		func(c string) string { return strings.ReplaceAll(c, "-", "") },
		func(c string) string { return " " + strings.ToLower(c[:2]) + "-" + c[2:] + " " },
	} {
		da := deviceAuth(t, cfg)
		status, body, _ := p.enter(shape(da.UserCode))
		if status != http.StatusOK || !(strings.Contains(body, `action="/login"`) || strings.Contains(body, `action="/device/decision"`)) {
			t.Fatalf("right code %q: %d %.300s", shape(da.UserCode), status, body)
		}
	}
	// More people than the address's budget, each entering their own code
	// from the same address (one NAT, at the defaults): every one passes.
	for i := range 25 {
		da := deviceAuth(t, cfg)
		if status, body, _ := p.enter(da.UserCode); status != http.StatusOK {
			t.Fatalf("person %d behind the shared address: %d %.300s", i+1, status, body)
		}
	}
	if status := wrong(); status != http.StatusBadRequest {
		t.Fatalf("20th wrong code: %d", status)
	}
	if status := wrong(); status != http.StatusTooManyRequests {
		t.Fatalf("21st wrong code: %d, want 429", status)
	}
	// Locked: even a right code waits for the window.
	da := deviceAuth(t, cfg)
	if status, _, _ := p.enter(da.UserCode); status != http.StatusTooManyRequests {
		t.Fatalf("right code from a locked address: %d, want 429", status)
	}
}

func countRows(t testing.TB, dsn, query string) int {
	t.Helper()
	var n int
	withConn(t, dsn, func(c *pgx.Conn) error { return c.QueryRow(context.Background(), query).Scan(&n) })
	return n
}

func execSQL(t testing.TB, dsn, query string) {
	t.Helper()
	withConn(t, dsn, func(c *pgx.Conn) error { _, err := c.Exec(context.Background(), query); return err })
}

func withConn(t testing.TB, dsn string, fn func(*pgx.Conn) error) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(ctx) }()
	if err := fn(c); err != nil {
		t.Fatal(err)
	}
}

// chromiumBinary returns the browser binary, skipping the test locally and
// failing it in CI when there is none.
func chromiumBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found; CI must install it")
	}
	t.Skip("chromium not found")
	return ""
}
