package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url) // #nosec G107 -- test URL
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// A replica whose active key does not open (sealed by a replica with
// another master secret, the failure of issue 11) is not ready, and the
// metric says which algorithm cannot sign.
func TestReadyzUnusableKey(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	if code, body := getStatus(t, s.adminURL+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz before: %d %s", code, body)
	}

	// A key sealed under another secret, made active in the shared
	// database, the old active key retired.
	box, err := secretbox.New([][]byte{[]byte("another-master-secret-0123456789-abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.New(memory.Config{})
	foreignRing, err := keys.NewRing(ctx, keys.Config{Store: mem, Locker: mem, Notifier: mem, Sealer: box, Algorithms: []string{keys.ES256}})
	if err != nil {
		t.Fatal(err)
	}
	if err := foreignRing.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	memRows, _ := mem.ListSigningKeys(ctx)
	var foreign storage.SigningKey
	for _, k := range memRows {
		if k.State == storage.KeyActive {
			foreign = *k
		}
	}
	db := pgtest.OpenStore(t, dsn, nil)
	rows, err := db.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	foreign.ActivatedAt = time.Now().UTC().Truncate(time.Microsecond)
	if err := db.CreateSigningKey(ctx, &foreign); err != nil {
		t.Fatal(err)
	}
	for _, k := range rows {
		if k.Algorithm == keys.ES256 && k.State == storage.KeyActive {
			if err := db.TransitionSigningKey(ctx, k.KID, storage.KeyActive, storage.KeyRetired, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = s.app.ring.Load(ctx) // reports the unusable key; NOTIFY would do the same

	code, body := getStatus(t, s.adminURL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"signing_keys":"unusable"`) {
		t.Fatalf("readyz with an unusable active key: %d %s", code, body)
	}
	if code, body := getStatus(t, s.issuer+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("public readyz: %d %s", code, body)
	}
	_, metrics := getStatus(t, s.adminURL+"/metrics")
	for _, want := range []string{`bulwark_signing_key_usable{alg="ES256"} 0`, `bulwark_signing_key_usable{alg="RS256"} 1`, "bulwark_build_info{"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// At SIGTERM /readyz answers 503 while the listeners still serve (for
// --shutdown-delay), then the server drains and exits 0, logging both
// steps. Runs the real binary with a real signal.
func TestReadyzDuringShutdown(t *testing.T) {
	p := startServe(t, buildBinary(t), nil, "--dev", "--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--shutdown-delay", "20s", "--log-format", "json")
	admin := "http://" + p.admin
	poll := func(want int) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := getStatus(t, admin+"/readyz")
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("readyz never answered %d (last %d %s)", want, code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	poll(http.StatusOK)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if body := poll(http.StatusServiceUnavailable); !strings.Contains(body, "shutting_down") {
		t.Fatalf("readyz body during shutdown: %s", body)
	}
	p.waitLog(t, "shutting down: /readyz answers 503; draining after the delay")
	// Still serving while draining: liveness answers.
	if code, _ := getStatus(t, admin+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz during the delay: %d", code)
	}
	p.waitLog(t, "listeners drained")
	if err := p.exitWithin(t, 60*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
