package main

// A replica killed mid-delivery, for real: the built binary runs as a
// child process on Postgres, claims back-channel logouts and sends them to
// a relying party that holds the requests; the process gets SIGKILL (no
// shutdown code runs) and another replica started afterwards delivers
// every logout, with the same jti, to a receiver that verifies each token
// against the JWKS.

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// newTLSReceiver is a relying party's back-channel logout endpoint over
// https on loopback, and a CA file that trusts its certificate (for a
// child process's SSL_CERT_FILE).
func newTLSReceiver(t *testing.T, issuer, client string) (*receiver, string) {
	t.Helper()
	rc := &receiver{t: t, issuer: issuer, client: client}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(rc.handle))
	// A killed sender leaves handshakes half done; that is the point.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	rc.url = srv.URL + "/backchannel-logout"
	ca := filepath.Join(t.TempDir(), "receiver-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return rc, ca
}

// TestE2EBackchannelReplicaSIGKILLedMidDelivery: replica A (the binary)
// claims the logouts of three sessions and is SIGKILLed while the receiver
// holds its requests; nothing was delivered and nothing is lost: replica B,
// started afterwards on the same database behind the same address, takes
// the rows over once A's lease ran out and delivers one logout per
// session, the held ones with the jti A sent.
func TestE2EBackchannelReplicaSIGKILLedMidDelivery(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	bin := buildBinary(t)
	// Both replicas answer at one address, as behind a load balancer: A
	// there first, then B.
	addr := freePort(t)
	issuer := "http://" + addr
	rc, ca := newTLSReceiver(t, issuer, "rp-kill")
	var killed atomic.Bool
	held := make(chan string, 16)
	rc.hold = func(r *http.Request, jti string) {
		if killed.Load() {
			return
		}
		held <- jti
		<-r.Context().Done() // answered never: the sender dies first
	}

	const redirect = "http://127.0.0.1:9999/callback"
	const secret = "rp-kill-secret-0123456789abcdef"
	seed := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(seed, []byte(`
clients:
  - client_id: rp-kill
    client_secret: `+secret+`
    client_name: Relying party
    redirect_uris: ["`+redirect+`"]
    grant_types: [authorization_code]
    scope: "openid"
    skip_consent: true
    backchannel_logout_uri: "`+rc.url+`"
    backchannel_logout_session_required: true
users:
  - username: alice
    password: `+e2ePassword+`
`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Production flags only: the receiver is https on an allowed network,
	// trusted through the standard SSL_CERT_FILE; delivery timing is
	// shortened so the lease runs out in seconds.
	env := []string{"BULWARK_SECRET=" + e2eMasterSecret, "SSL_CERT_FILE=" + ca}
	args := []string{"--database-url", dsn, "--migrate", "--issuer", issuer, "--public-addr", addr, "--admin-addr", "127.0.0.1:0",
		"--egress-allowed-networks", "127.0.0.0/8",
		"--backchannel-poll-interval", "200ms", "--backchannel-timeout", "5s", "--backchannel-lease", "6s",
		"--backchannel-retry-min", "100ms", "--backchannel-retry-max", "500ms",
		"--log-format", "json", "--log-level", "info"}
	a := startServe(t, bin, env, append(args, "--seed", seed)...)

	rp := &oauth2.Config{ClientID: "rp-kill", ClientSecret: secret, RedirectURL: redirect, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/oauth2/auth", TokenURL: issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	sids := map[string]bool{}
	for range 3 {
		sid, _ := signIn(t, issuer, jarClient(issuer), rp)
		sids[sid] = true
	}
	if len(sids) != 3 {
		t.Fatalf("%d distinct sessions, want 3", len(sids))
	}

	// Sign alice out everywhere with the binary's own CLI: three logouts
	// are queued, and A's worker starts sending them.
	signOut := execBinary(t, bin, env, "users", "sign-out", "alice", "--database-url", dsn)
	if !strings.Contains(signOut, "3 login session(s) ended, 3 back-channel logout(s) queued") {
		t.Fatalf("sign-out: %q", signOut)
	}
	var inFlight []string
	select {
	case jti := <-held:
		inFlight = append(inFlight, jti)
	case <-time.After(deliveryWithin):
		t.Fatalf("replica A never started a delivery\n%s", a.log.String())
	}

	// SIGKILL: no deferred code, no release of the claimed rows.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := a.exitWithin(t, time.Minute); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("replica A's exit: %v, want killed", err)
	}
	killed.Store(true)
	for len(held) > 0 {
		inFlight = append(inFlight, <-held)
	}
	store := pgtest.OpenStore(t, dsn, nil)
	if n, err := store.PendingLogouts(context.Background()); err != nil || n != 3 {
		t.Fatalf("after the kill: %d logouts pending (%v), want all 3", n, err)
	}
	if got := rc.tokens(); len(got) != 0 {
		t.Fatalf("the receiver accepted %d tokens from the killed replica", len(got))
	}

	// Replica B, same database, same address.
	startServe(t, bin, env, args...)
	rc.waitTokens(3)
	waitOutboxEmpty(t, store)
	got := rc.tokens()
	jtis, told := map[string]int{}, map[string]bool{}
	for _, tok := range got {
		jtis[tok.str("jti")]++
		told[tok.str("sid")] = true
	}
	for sid := range sids {
		if !told[sid] {
			t.Fatalf("the logout of session %s was lost: %v", sid, got)
		}
	}
	for _, jti := range inFlight {
		if jtis[jti] == 0 {
			t.Fatalf("the delivery killed in flight (jti %s) was not repeated with its jti: %v", jti, jtis)
		}
	}
	if len(jtis) != 3 {
		t.Fatalf("%d distinct jtis for 3 logouts: %v", len(jtis), jtis)
	}
	t.Logf("%d deliveries in flight at the kill; B delivered %d tokens for 3 logouts (jti counts %v)", len(inFlight), len(got), jtis)
}
