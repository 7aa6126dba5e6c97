package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/server/apikeyauth"
	"github.com/bulwark-auth/bulwark/storage"
)

// enrolTOTP gives u a TOTP secret, sealed as the console stores it.
func (e *env) enrolTOTP(u *storage.User) *otp.Key {
	e.t.Helper()
	ctx := context.Background()
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "t", AccountName: u.Username})
	if err != nil {
		e.t.Fatal(err)
	}
	sealed, err := e.box.Seal([]byte(key.Secret()), []byte(u.ID))
	if err != nil {
		e.t.Fatal(err)
	}
	cur, err := e.store.UserByID(ctx, u.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	cur.TOTPSecretSealed = sealed
	if err := e.store.UpdateUser(ctx, cur, cur.Version); err != nil {
		e.t.Fatal(err)
	}
	return key
}

func (e *env) enrolled(id string) bool {
	e.t.Helper()
	u, err := e.store.UserByID(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(u.TOTPSecretSealed) > 0
}

// loginTOTP signs in with the password and the current code of key.
func (b *browser) loginTOTP(username string, key *otp.Key) {
	b.t.Helper()
	p := b.submit("/admin/login", "/admin/login", url.Values{"username": {username}, "password": {adminPassword}})
	if p.location() != "/admin/login/totp" {
		b.t.Fatalf("password step: %d %q", p.status, p.location())
	}
	code, err := totp.GenerateCode(key.Secret(), b.e.clock.Now())
	if err != nil {
		b.t.Fatal(err)
	}
	p = b.submit("/admin/login/totp", "/admin/login/totp", url.Values{"code": {code}})
	if p.status != http.StatusSeeOther || p.location() != "/admin/" {
		b.t.Fatalf("totp step: %d %q", p.status, p.location())
	}
}

// adminAPI serves the JSON admin API over the env's Service behind the
// real API key middleware and returns its base URL and a key with scopes.
func (e *env) adminAPI(scopes ...string) (base, token string) {
	e.t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	ak, err := apikeys.New(apikeys.Config{
		Store: e.store, Locker: e.store, Notifier: e.store, Hasher: hash.NewCached(e.hasher, hash.CacheConfig{Now: e.clock.Now}),
		Sealer: e.box, Now: e.clock.Now, Logger: log,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	token, _, err = ak.Create(context.Background(), apikeys.CreateRequest{
		Name: "ops", OwnerType: apikeys.OwnerService, OwnerID: "ops", Scopes: scopes, CreatedBy: "test",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	r := mux.NewRouter()
	admin.NewAPI(e.svc, apikeyauth.Middleware(ak, apikeyauth.WithLogger(log))).Register(r)
	srv := httptest.NewServer(r)
	e.t.Cleanup(srv.Close)
	return srv.URL + admin.Prefix, token
}

// An administrator resets a lost second factor through the API: the old
// session is gone, and the next console sign-in asks for the password only.
func TestAPIResetTOTPThenPasswordOnlySignIn(t *testing.T) {
	e := newEnv(t)
	u := e.addUser("lost", apikeys.ScopeUsers, apikeys.ScopeAuditRead)
	key := e.enrolTOTP(u)
	old := e.browser()
	old.loginTOTP("lost", key)
	if p := old.get("/admin/"); p.status != http.StatusOK {
		t.Fatalf("signed in: %d", p.status)
	}

	base, tok := e.adminAPI(apikeys.ScopeUsers, apikeys.ScopeAuditRead)
	req, _ := http.NewRequest(http.MethodPost, base+"/users/"+u.ID+"/totp/reset", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("reset: %d %s", res.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m["totp_enrolled"] != false || m["id"] != u.ID {
		t.Fatalf("reset response: %s", body)
	}
	for k := range m {
		if strings.Contains(k, "secret") || strings.Contains(k, "sealed") || strings.Contains(k, "password") {
			t.Fatalf("reset response has field %q: %s", k, body)
		}
	}

	if p := old.get("/admin/"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/admin/login") {
		t.Fatalf("the session opened with the lost factor survived: %d %q", p.status, p.location())
	}
	b := e.browser()
	b.login("lost") // password only: no TOTP step
	if p := b.get("/admin/account"); p.status != http.StatusOK || !strings.Contains(p.body, `name="pending"`) {
		t.Fatalf("account page does not offer enrolment: %d", p.status)
	}
}

// The console's "Reset two-factor": shown and allowed with admin:users,
// confirmed server-side, CSRF-protected, and refused for a target holding
// scopes the caller lacks.
func TestConsoleResetTOTP(t *testing.T) {
	e := newEnv(t)
	e.addUser("ops", apikeys.ScopeUsers)
	e.addUser("reader", apikeys.ScopeAuditRead)
	peer := e.addUser("peer", apikeys.ScopeUsers)
	boss := e.addUser("boss", apikeys.ScopeUsers, apikeys.ScopeKeys)
	e.enrolTOTP(peer)
	e.enrolTOTP(boss)

	reader := e.browser()
	reader.login("reader")
	if p := reader.get("/admin/users/" + peer.ID + "/totp/reset"); p.status != http.StatusForbidden {
		t.Fatalf("confirm page without admin:users: %d", p.status)
	}

	b := e.browser()
	b.login("ops")
	list := b.get("/admin/users")
	if !strings.Contains(list.body, "/admin/users/"+peer.ID+"/totp/reset") || !strings.Contains(list.body, "2FA on") {
		t.Fatalf("users list shows no reset action or badge: %d", list.status)
	}
	if strings.Contains(list.body, string(mustUser(t, e, peer.ID).TOTPSecretSealed)) {
		t.Fatal("users list holds the sealed secret")
	}
	confirm := b.get("/admin/users/" + peer.ID + "/totp/reset")
	if confirm.status != http.StatusOK || !strings.Contains(confirm.body, `action="/admin/users/`+peer.ID+`/totp/reset"`) {
		t.Fatalf("confirm page: %d", confirm.status)
	}

	if p := b.post("/admin/users/"+peer.ID+"/totp/reset", url.Values{}); p.status != http.StatusForbidden {
		t.Fatalf("without CSRF: %d", p.status)
	}
	if p := b.post("/admin/users/"+peer.ID+"/totp/reset", url.Values{"csrf_token": {"forged"}}); p.status != http.StatusForbidden {
		t.Fatalf("forged CSRF: %d", p.status)
	}
	if !e.enrolled(peer.ID) {
		t.Fatal("a request without CSRF reset the second factor")
	}

	p := b.submit("/admin/users/"+boss.ID+"/totp/reset", "/admin/users/"+boss.ID+"/totp/reset", nil)
	if p.status != http.StatusForbidden || !e.enrolled(boss.ID) {
		t.Fatalf("reset of a user holding more scopes: %d, enrolled=%v", p.status, e.enrolled(boss.ID))
	}

	p = b.submit("/admin/users/"+peer.ID+"/totp/reset", "/admin/users/"+peer.ID+"/totp/reset", nil)
	if p.status != http.StatusOK || e.enrolled(peer.ID) {
		t.Fatalf("reset: %d, enrolled=%v", p.status, e.enrolled(peer.ID))
	}
	if list := b.get("/admin/users"); strings.Contains(list.body, "/admin/users/"+peer.ID+"/totp/reset") {
		t.Fatal("the reset action is still offered for a user without a second factor")
	}
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Event: "user.totp_reset", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Actor != "user:u-ops" || evs[0].Subject != peer.ID {
		t.Fatalf("audit: %+v", evs)
	}
	e.browser().login("peer")
}

func mustUser(t *testing.T, e *env, id string) *storage.User {
	t.Helper()
	u, err := e.store.UserByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var (
	secretRE  = regexp.MustCompile(`id="totp-secret" class="secret" type="text" value="([A-Z2-7]+)"`)
	pendingRE = regexp.MustCompile(`name="pending" value="([^"]+)"`)
)

// A signed-in admin removes their own second factor on the Account page
// (confirm + CSRF), stays signed in, and enrols a new device.
func TestAccountRemoveAndReenrolTOTP(t *testing.T) {
	e := newEnv(t)
	me := e.addUser("me", apikeys.ScopeAuditRead)
	key := e.enrolTOTP(me)
	b := e.browser()
	b.loginTOTP("me", key)

	acct := b.get("/admin/account")
	if !strings.Contains(acct.body, `href="/admin/account/totp/remove"`) {
		t.Fatalf("account page offers no removal: %d", acct.status)
	}
	if p := b.post("/admin/account/totp/remove", url.Values{}); p.status != http.StatusForbidden || !e.enrolled(me.ID) {
		t.Fatalf("removal without CSRF: %d, enrolled=%v", p.status, e.enrolled(me.ID))
	}
	confirm := b.get("/admin/account/totp/remove")
	if confirm.status != http.StatusOK || !strings.Contains(confirm.body, `action="/admin/account/totp/remove"`) {
		t.Fatalf("confirm page: %d", confirm.status)
	}
	p := b.submit("/admin/account/totp/remove", "/admin/account/totp/remove", nil)
	if p.status != http.StatusOK || e.enrolled(me.ID) {
		t.Fatalf("removal: %d, enrolled=%v", p.status, e.enrolled(me.ID))
	}
	if p := b.get("/admin/"); p.status != http.StatusOK {
		t.Fatalf("removing your own factor signed you out: %d", p.status)
	}
	// Nothing left to remove.
	if p := b.get("/admin/account/totp/remove"); p.status != http.StatusSeeOther {
		t.Fatalf("confirm page without a factor: %d", p.status)
	}

	acct = b.get("/admin/account")
	sm, pm := secretRE.FindStringSubmatch(acct.body), pendingRE.FindStringSubmatch(acct.body)
	if sm == nil || pm == nil {
		t.Fatalf("no enrolment form after removal: %d", acct.status)
	}
	if sm[1] == key.Secret() {
		t.Fatal("re-enrolment offers the old secret")
	}
	code, err := totp.GenerateCode(sm[1], e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	p = b.submit("/admin/account", "/admin/account/totp", url.Values{"pending": {pm[1]}, "code": {code}})
	if p.status != http.StatusOK || !strings.Contains(p.body, "Two-factor authentication is on") {
		t.Fatalf("re-enrol: %d", p.status)
	}
	opened, err := e.box.Open(mustUser(t, e, me.ID).TOTPSecretSealed, []byte(me.ID))
	if err != nil || string(opened) != sm[1] {
		t.Fatalf("stored secret is not the new one (err %v)", err)
	}

	next := e.browser()
	pp := next.submit("/admin/login", "/admin/login", url.Values{"username": {"me"}, "password": {adminPassword}})
	if pp.location() != "/admin/login/totp" {
		t.Fatalf("after re-enrolment sign-in skips the second factor: %d %q", pp.status, pp.location())
	}
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Event: "user.totp_reset", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Actor != "user:"+me.ID || evs[0].Subject != me.ID {
		t.Fatalf("audit: %+v", evs)
	}
}
