package protect

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func newTestDetector(t *testing.T, store *blockStore, n *notifier, clk *clock, audit func(context.Context, storage.AuditEvent)) *Detector {
	t.Helper()
	log, _ := test.NewNullLogger()
	cfg := DetectorConfig{
		Store: store,
		PerIP: map[Signal]Threshold{
			SignalFailedLogin: {Count: 5, Window: time.Minute, BlockFor: 10 * time.Minute},
		},
		PerClient: map[Signal]Threshold{
			SignalInvalidClient: {Count: 3, Window: time.Minute, BlockFor: 5 * time.Minute},
			SignalRefreshReuse:  {Count: 1, Window: time.Hour, BlockFor: time.Hour},
		},
		Audit:       audit,
		Log:         log,
		ReloadEvery: time.Hour, // only notifications trigger reloads in tests
		Now:         clk.Now,
	}
	if n != nil {
		cfg.Notifier = n
	}
	d, err := NewDetector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDetectorBlocksAndLifts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	store := newBlockStore()
	var mu sync.Mutex
	var events []storage.AuditEvent
	d := newTestDetector(t, store, nil, clk, func(_ context.Context, e storage.AuditEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	srv := httptest.NewServer(pipelined(d.Middleware(API)(echoBody)))
	defer srv.Close()
	ip := netip.MustParseAddr("127.0.0.1")

	for i := 0; i < 4; i++ {
		d.Observe(ctx, SignalFailedLogin, ip, "")
	}
	if d.Blocked(BlockIP, "127.0.0.1") {
		t.Fatal("blocked below the threshold")
	}
	if resp := postForm(t, srv, "", nil); resp.StatusCode != 200 {
		t.Fatalf("before threshold: status %d", resp.StatusCode)
	}
	d.Observe(ctx, SignalFailedLogin, ip, "")
	if !d.Blocked(BlockIP, "127.0.0.1") {
		t.Fatal("not blocked at the threshold")
	}
	resp := postForm(t, srv, "", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("blocked IP: status %d, want 403", resp.StatusCode)
	}
	if e := decodeOAuthError(t, resp); e.Error != "access_denied" {
		t.Fatalf("body %+v", e)
	}
	if len(events) != 1 || events[0].Event != "block.placed" || events[0].SourceIP != "127.0.0.1" || events[0].Details["signal"] != "failed_login" {
		t.Fatalf("audit events = %+v", events)
	}
	bs, err := d.List(ctx)
	if err != nil || len(bs) != 1 || bs[0].Kind != BlockIP || !bs[0].ExpiresAt.Equal(clk.Now().Add(10*time.Minute)) {
		t.Fatalf("List = %+v, %v", bs, err)
	}

	if err := d.Lift(ctx, BlockIP, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if resp := postForm(t, srv, "", nil); resp.StatusCode != 200 {
		t.Fatalf("after Lift: status %d", resp.StatusCode)
	}
	if bs, _ := d.List(ctx); len(bs) != 0 {
		t.Fatalf("store still holds %d blocks", len(bs))
	}
}

func TestDetectorClientBlockAndExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	d := newTestDetector(t, newBlockStore(), nil, clk, nil)
	srv := httptest.NewServer(pipelined(d.Middleware(API)(echoBody)))
	defer srv.Close()

	for i := 0; i < 3; i++ {
		d.Observe(ctx, SignalInvalidClient, netip.Addr{}, "svc-a")
	}
	// Same client by form parameter and by Basic auth: both refused; other
	// clients pass with their body intact.
	if resp := postForm(t, srv, "", url.Values{"client_id": {"svc-a"}}); resp.StatusCode != 403 {
		t.Fatalf("blocked client (form): %d", resp.StatusCode)
	}
	if resp := postForm(t, srv, "svc-a", nil); resp.StatusCode != 403 {
		t.Fatalf("blocked client (basic): %d", resp.StatusCode)
	}
	resp := postForm(t, srv, "", url.Values{"client_id": {"svc-b"}})
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "client_id=svc-b" {
		t.Fatalf("other client: %d %q", resp.StatusCode, b)
	}
	clk.Advance(5*time.Minute - time.Second)
	if !d.Blocked(BlockClient, "svc-a") {
		t.Fatal("block ended early")
	}
	clk.Advance(time.Second)
	if d.Blocked(BlockClient, "svc-a") {
		t.Fatal("block outlived its expiry")
	}
	// Signals spread beyond the window never add up to a block.
	for i := 0; i < 4; i++ {
		d.Observe(ctx, SignalInvalidClient, netip.Addr{}, "svc-c")
		clk.Advance(2 * time.Minute)
	}
	if d.Blocked(BlockClient, "svc-c") {
		t.Fatal("signals outside the window caused a block")
	}
	// A single refresh-token reuse blocks the client at once.
	d.Observe(ctx, SignalRefreshReuse, netip.MustParseAddr("192.0.2.1"), "svc-d")
	if !d.Blocked(BlockClient, "svc-d") || d.Blocked(BlockIP, "192.0.2.1") {
		t.Fatal("refresh reuse: want the client blocked, not the IP (no per-IP threshold)")
	}
}

func TestDetectorReplicasShareBlocks(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := newClock()
	store, n := newBlockStore(), newNotifier()
	a := newTestDetector(t, store, n, clk, nil)
	b := newTestDetector(t, store, n, clk, nil)
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("replica b never saw: %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// b subscribes in Run; keep announcing until it listens.
	if err := a.Block(ctx, BlockIP, "::ffff:198.51.100.9", "manual", time.Hour); err != nil {
		t.Fatal(err)
	}
	waitFor("block placed on replica a", func() bool {
		_ = n.Notify(ctx, BlocksChannel, "reload")
		return b.Blocked(BlockIP, "198.51.100.9")
	})
	if err := a.Lift(ctx, BlockIP, "198.51.100.9"); err != nil {
		t.Fatal(err)
	}
	waitFor("block lifted on replica a", func() bool { return !b.Blocked(BlockIP, "198.51.100.9") })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestDetectorStoreDownStillBlocksLocally(t *testing.T) {
	t.Parallel()
	clk := newClock()
	store := newBlockStore()
	store.fail = errors.New("db down")
	log, hook := test.NewNullLogger()
	d, err := NewDetector(DetectorConfig{
		Store:     store,
		PerClient: map[Signal]Threshold{SignalInvalidToken: {Count: 2, Window: time.Minute, BlockFor: time.Minute}},
		Log:       log,
		Now:       clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	d.Observe(context.Background(), SignalInvalidToken, netip.Addr{}, "rs-1")
	d.Observe(context.Background(), SignalInvalidToken, netip.Addr{}, "rs-1")
	if !d.Blocked(BlockClient, "rs-1") {
		t.Fatal("store failure prevented the local block")
	}
	if e := hook.LastEntry(); e == nil || e.Level != logrus.ErrorLevel {
		t.Fatalf("store failure not logged: %+v", e)
	}
}

func TestNewDetectorValidates(t *testing.T) {
	t.Parallel()
	_, err := NewDetector(DetectorConfig{PerIP: map[Signal]Threshold{SignalFailedLogin: {Count: 0}}})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"Store is required", "Log is required", "failed_login"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not mention %q", err, want)
		}
	}
}
