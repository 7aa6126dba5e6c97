package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// TestDevicesList: the console lists unexpired device authorizations with
// client, user code hint, status, user and times, never a whole code, and
// only to admins who may read the audit log.
func TestDevicesList(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	e.addUser("clerk", apikeys.ScopeClientsRead)
	ctx := context.Background()
	now := e.clock.Now()
	for _, d := range []*storage.DeviceAuthorization{
		{DeviceCodeHash: "d1", UserCodeHash: storage.HashKey("BCDFGHJK"), UserCodeHint: "BCDF", ClientID: "tv-app", RequestID: "r1",
			Scopes: []string{"openid", "offline_access"}, Interval: 5 * time.Second, CreatedAt: now.Add(-2 * time.Minute), ExpiresAt: now.Add(8 * time.Minute)},
		{DeviceCodeHash: "d2", UserCodeHash: storage.HashKey("XZXZXZXZ"), UserCodeHint: "XZXZ", ClientID: "cli<b>", RequestID: "r2",
			Interval: 5 * time.Second, CreatedAt: now.Add(-20 * time.Minute), ExpiresAt: now.Add(-10 * time.Minute)},
	} {
		if err := e.store.CreateDeviceAuthorization(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.DecideDeviceAuthorization(ctx, storage.HashKey("BCDFGHJK"), "u-alice", nil, now); err != nil {
		t.Fatal(err)
	}

	b := e.browser()
	b.login("root")
	p := b.get("/admin/devices")
	if p.status != http.StatusOK {
		t.Fatalf("devices page: %d", p.status)
	}
	for _, want := range []string{"tv-app", "BCDF-····", "denied", "u-alice", "offline_access", "2 min ago", "in 8 min", `href="/admin/devices" aria-current="page"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("devices page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "BCDFGHJK") || strings.Contains(p.body, "BCDF-GHJK") {
		t.Error("devices page shows a whole user code")
	}
	if strings.Contains(p.body, "XZXZ") || strings.Contains(p.body, "cli<b>") {
		t.Error("devices page lists an expired authorization (or an unescaped client id)")
	}

	c := e.browser()
	c.login("clerk")
	if p := c.get("/admin/devices"); p.status != http.StatusForbidden {
		t.Fatalf("devices page without admin:audit:read: %d", p.status)
	}
}
