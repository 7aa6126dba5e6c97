package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// The TOTP step allows 5 wrong codes per pending sign-in, but a password
// holder could start sign-in after sign-in. Failures therefore also count
// per user: past the limit the user's second factor is locked for a while
// (even the right code is refused), then works again.
func TestTOTPBruteForceAcrossSignIns(t *testing.T) {
	e := newEnv(t)
	u := e.addUser("root", allScopes...)
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "t", AccountName: "root"})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := e.box.Seal([]byte(key.Secret()), []byte(u.ID))
	if err != nil {
		t.Fatal(err)
	}
	u.TOTPSecretSealed = sealed
	if err := e.store.UpdateUser(context.Background(), u, u.Version); err != nil {
		t.Fatal(err)
	}
	wrong := func(code string) string {
		if code == "000000" {
			return "000001"
		}
		return "000000"
	}
	attempts := 0
	for range 10 { // ten sign-ins of five wrong codes each
		b := e.browser()
		p := b.submit("/admin/login", "/admin/login", url.Values{"username": {"root"}, "password": {adminPassword}})
		if p.location() != "/admin/login/totp" {
			t.Fatalf("password step: %d %q", p.status, p.location())
		}
		csrf := b.csrf("/admin/login/totp")
		for range 5 {
			good, _ := totp.GenerateCode(key.Secret(), e.clock.Now())
			p := b.post("/admin/login/totp", url.Values{"csrf_token": {csrf}, "code": {wrong(good)}})
			attempts++
			if p.status != http.StatusUnauthorized {
				break // this sign-in is over
			}
		}
	}
	b := e.browser()
	b.submit("/admin/login", "/admin/login", url.Values{"username": {"root"}, "password": {adminPassword}})
	good, _ := totp.GenerateCode(key.Secret(), e.clock.Now())
	p := b.submit("/admin/login/totp", "/admin/login/totp", url.Values{"code": {good}})
	if p.status == http.StatusSeeOther && p.location() == "/admin/" {
		t.Fatalf("after %d wrong codes the right one still signs in: the second factor can be brute-forced", attempts)
	}
	if p.location() != "/admin/login?m=totp_locked" {
		t.Fatalf("locked answer: %d %q", p.status, p.location())
	}
	if p := b.get("/admin/login?m=totp_locked"); !strings.Contains(p.body, "Too many wrong codes") {
		t.Fatalf("the sign-in page does not say why: %d", p.status)
	}
	if p := b.get("/admin/"); p.status != http.StatusSeeOther {
		t.Fatalf("a locked sign-in opened the console: %d", p.status)
	}

	e.clock.Advance(16 * time.Minute)
	b = e.browser()
	b.submit("/admin/login", "/admin/login", url.Values{"username": {"root"}, "password": {adminPassword}})
	good, _ = totp.GenerateCode(key.Secret(), e.clock.Now())
	p = b.submit("/admin/login/totp", "/admin/login/totp", url.Values{"code": {good}})
	if p.status != http.StatusSeeOther || p.location() != "/admin/" {
		t.Fatalf("after the lockout the right code: %d %q", p.status, p.location())
	}
}
