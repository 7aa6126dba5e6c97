package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// putBlock places a block directly in the store, as the anomaly detector
// does.
func (e *env) putBlock(kind, value, reason string, placed, expires time.Duration) {
	e.t.Helper()
	now := e.clock.Now()
	if err := e.store.PutBlock(context.Background(), &storage.Block{
		Kind: kind, Value: value, Reason: reason, CreatedAt: now.Add(-placed), ExpiresAt: now.Add(expires),
	}); err != nil {
		e.t.Fatal(err)
	}
}

// blocked returns the blocks in force as "kind value" strings.
func (e *env) blocked() []string {
	e.t.Helper()
	bs, err := e.svc.ListBlocks(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Kind + " " + b.Value
	}
	return out
}

// liftForms returns the (kind, value) pairs of the Lift forms on a blocks
// page, unescaped as a browser would submit them.
var liftFormRE = regexp.MustCompile(`name="kind" value="([^"]*)">\s*<input type="hidden" name="value" value="([^"]*)">`)

func liftForms(body string) [][2]string {
	var out [][2]string
	for _, m := range liftFormRE.FindAllStringSubmatch(body, -1) {
		out = append(out, [2]string{html.UnescapeString(m[1]), html.UnescapeString(m[2])})
	}
	return out
}

var blockStatRE = regexp.MustCompile(`href="/admin/blocks"><span class="stat-label">Blocked sources</span><span class="stat-value">(\d+)</span>`)

func TestBlocksListAndLift(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	const odd = `mobile app "beta" & <co>`
	e.putBlock("ip", "192.0.2.7", "credential stuffing", 10*time.Minute, 50*time.Minute)
	e.putBlock("client", odd, "refresh token reuse", 2*time.Hour, 3*time.Hour)
	e.putBlock("ip", "198.51.100.99", "expired already", 2*time.Hour, -time.Minute)
	b := e.browser()
	b.login("root")

	p := b.get("/admin/blocks")
	if p.status != http.StatusOK {
		t.Fatalf("blocks page: %d", p.status)
	}
	for _, want := range []string{"192.0.2.7", "credential stuffing", "10 min ago", "in 50 min", "2 h ago", "in 3 h",
		html.EscapeString(odd), `href="/admin/blocks" aria-current="page"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("blocks page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "198.51.100.99") {
		t.Error("blocks page lists an expired block")
	}
	forms := liftForms(p.body)
	if len(forms) != 2 || forms[0] != [2]string{"client", odd} || forms[1] != [2]string{"ip", "192.0.2.7"} {
		t.Fatalf("lift forms: %q", forms)
	}
	if m := blockStatRE.FindStringSubmatch(b.get("/admin/").body); m == nil || m[1] != "2" {
		t.Fatalf("overview block count: %v", m)
	}

	// Lift the client block with exactly what the page's form carries: the
	// value survives escaping and comes back intact.
	p = b.submit("/admin/blocks", "/admin/blocks/lift", url.Values{"kind": {forms[0][0]}, "value": {forms[0][1]}})
	if p.status != http.StatusSeeOther || p.location() != "/admin/blocks?m=lifted" {
		t.Fatalf("lift: %d %q %s", p.status, p.location(), p.body)
	}
	if got := e.blocked(); len(got) != 1 || got[0] != "ip 192.0.2.7" {
		t.Fatalf("blocks after lift: %q", got)
	}
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Event: "block.lifted", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Actor != "user:u-root" || evs[0].Details["kind"] != "client" ||
		evs[0].Details["value"] != odd || evs[0].ClientID != odd {
		t.Fatalf("block.lifted audit: %+v", evs)
	}
	p = b.get(p.location())
	if !strings.Contains(p.body, `class="notice notice-ok"`) || !strings.Contains(p.body, "lifted") || strings.Contains(p.body, "refresh token reuse") {
		t.Fatalf("list after lift: flash or stale row")
	}

	// Lifting it again: a clear 404 on the list, not a 500.
	p = b.submit("/admin/blocks", "/admin/blocks/lift", url.Values{"kind": {"client"}, "value": {odd}})
	if p.status != http.StatusNotFound || !strings.Contains(p.body, "not blocked") || !strings.Contains(p.body, "192.0.2.7") {
		t.Fatalf("lift unknown block: %d", p.status)
	}

	for _, tc := range []struct {
		name, kind, value, field string
	}{
		{"case=unknown kind", "planet", "mars", "kind"},
		{"case=empty kind", "", "192.0.2.7", "kind"},
		{"case=empty value", "ip", "", "value"},
		{"case=value too long", "client", strings.Repeat("x", 4097), "value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.submit("/admin/blocks", "/admin/blocks/lift", url.Values{"kind": {tc.kind}, "value": {tc.value}})
			if p.status != http.StatusBadRequest || !strings.Contains(p.body, "<code>"+tc.field+"</code>") {
				t.Fatalf("status %d, want 400 naming %s", p.status, tc.field)
			}
		})
	}
	if got := e.blocked(); len(got) != 1 {
		t.Fatalf("an invalid lift changed the blocks: %q", got)
	}

	// Lift the last one: the empty state, and a zero on the overview.
	if p := b.submit("/admin/blocks", "/admin/blocks/lift", url.Values{"kind": {"ip"}, "value": {"192.0.2.7"}}); p.status != http.StatusSeeOther {
		t.Fatalf("lift ip: %d", p.status)
	}
	if p := b.get("/admin/blocks"); !strings.Contains(p.body, "No sources are blocked.") || strings.Contains(p.body, "<table") {
		t.Error("no empty state")
	}
	if m := blockStatRE.FindStringSubmatch(b.get("/admin/").body); m == nil || m[1] != "0" {
		t.Fatalf("overview block count after lifting all: %v", m)
	}
}

func TestBlocksCSRF(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	e.putBlock("ip", "192.0.2.7", "credential stuffing", time.Minute, time.Hour)
	b := e.browser()
	b.login("root")
	other := e.browser()
	other.login("root")
	for name, token := range map[string]string{
		"case=missing":         "",
		"case=wrong":           "not-the-token",
		"case=other session's": other.csrf("/admin/blocks"),
	} {
		f := url.Values{"kind": {"ip"}, "value": {"192.0.2.7"}}
		if token != "" {
			f.Set("csrf_token", token)
		}
		if p := b.post("/admin/blocks/lift", f); p.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, p.status)
		}
	}
	if got := e.blocked(); len(got) != 1 {
		t.Fatalf("a forged form lifted the block: %q", got)
	}
}

func TestBlocksScopes(t *testing.T) {
	e := newEnv(t)
	e.addUser("auditor", apikeys.ScopeAuditRead)
	e.addUser("usermgr", apikeys.ScopeUsers)
	e.addUser("reader", apikeys.ScopeClientsRead)
	e.putBlock("ip", "192.0.2.7", "credential stuffing", time.Minute, time.Hour)
	lift := url.Values{"kind": {"ip"}, "value": {"192.0.2.7"}}
	for _, tc := range []struct {
		user, method, path string
		want               int
	}{
		{"auditor", http.MethodGet, "/admin/blocks", http.StatusOK},
		{"auditor", http.MethodPost, "/admin/blocks/lift", http.StatusForbidden},
		{"reader", http.MethodGet, "/admin/blocks", http.StatusForbidden},
		{"reader", http.MethodPost, "/admin/blocks/lift", http.StatusForbidden},
		{"usermgr", http.MethodGet, "/admin/blocks", http.StatusForbidden},
	} {
		t.Run("case="+tc.user+" "+tc.method+" "+tc.path, func(t *testing.T) {
			b := e.browser()
			b.login(tc.user)
			var p page
			if tc.method == http.MethodGet {
				p = b.get(tc.path)
			} else {
				p = b.submit("/admin/", tc.path, lift)
			}
			if p.status != tc.want {
				t.Fatalf("status %d, want %d", p.status, tc.want)
			}
		})
	}
	if got := e.blocked(); len(got) != 1 {
		t.Fatalf("a user without admin:users lifted the block: %q", got)
	}

	// The auditor sees blocks (nav, overview, list) but no Lift button;
	// the others see no Blocks link or count.
	ab := e.browser()
	ab.login("auditor")
	if p := ab.get("/admin/blocks"); !strings.Contains(p.body, "192.0.2.7") || strings.Contains(p.body, "/admin/blocks/lift") {
		t.Error("auditor: block not listed, or a Lift button shown")
	}
	if p := ab.get("/admin/"); !strings.Contains(p.body, `<a href="/admin/blocks">Blocks</a>`) || blockStatRE.FindStringSubmatch(p.body) == nil {
		t.Error("auditor: no Blocks link or count on the overview")
	}
	for _, u := range []string{"usermgr", "reader"} {
		ub := e.browser()
		ub.login(u)
		if p := ub.get("/admin/"); strings.Contains(p.body, `href="/admin/blocks"`) {
			t.Errorf("%s sees the blocks link or count", u)
		}
	}

	// admin:users alone may lift, as in the JSON API, but its answers never
	// list the other blocks (that takes admin:audit:read).
	e.putBlock("client", "other-client", "", time.Minute, time.Hour)
	ub := e.browser()
	ub.login("usermgr")
	p := ub.submit("/admin/", "/admin/blocks/lift", lift)
	if p.status != http.StatusOK || !strings.Contains(p.body, "lifted") || strings.Contains(p.body, "other-client") {
		t.Fatalf("usermgr lift: %d", p.status)
	}
	if got := e.blocked(); len(got) != 1 || got[0] != "client other-client" {
		t.Fatalf("blocks after usermgr lift: %q", got)
	}
	p = ub.submit("/admin/", "/admin/blocks/lift", lift)
	if p.status != http.StatusNotFound || !strings.Contains(p.body, "not blocked") || strings.Contains(p.body, "other-client") {
		t.Fatalf("usermgr lift of an unknown block: %d", p.status)
	}
}
