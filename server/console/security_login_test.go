package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The console's password step is guarded like the public login: after a
// few wrong passwords an account is slowed down and then locked, with the
// same answer for an unknown username, so admin passwords cannot be
// guessed at the admin listener's rate limit.
func TestConsolePasswordGuessingIsThrottled(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	for _, name := range []string{"root", "nobody"} {
		t.Run("user="+name, func(t *testing.T) {
			b := e.browser()
			throttled := false
			for i := range 12 {
				p := b.submit("/admin/login", "/admin/login", url.Values{"username": {name}, "password": {"wrong password " + name}})
				if p.status == http.StatusTooManyRequests {
					throttled = true
					if p.resp.Header.Get("Retry-After") == "" || !strings.Contains(p.body, "Too many failed sign-ins") {
						t.Fatalf("attempt %d: 429 without Retry-After or explanation", i)
					}
					break
				}
				if p.status != http.StatusUnauthorized {
					t.Fatalf("attempt %d: %d", i, p.status)
				}
			}
			if !throttled {
				t.Fatal("12 wrong passwords in a row were all checked")
			}
		})
	}
	// While held back, even the right password is not checked.
	b := e.browser()
	if p := b.submit("/admin/login", "/admin/login", url.Values{"username": {"root"}, "password": {adminPassword}}); p.status != http.StatusTooManyRequests {
		t.Fatalf("right password while throttled: %d", p.status)
	}
	e.clock.Advance(16 * time.Minute)
	b.login("root")
}
