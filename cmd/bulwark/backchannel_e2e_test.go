package main

// OpenID Connect Back-Channel Logout 1.0 end to end, on Postgres: relying
// parties (httptest receivers) verify every logout token with jwx against
// the published JWKS, each trigger delivers, a receiver that was down gets
// the token once it is back, a replica killed mid-delivery loses nothing,
// several replicas deliver each logout exactly once, and a URI pointing at
// a forbidden address never gets a connection.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/backchannel"
	"github.com/bulwark-auth/bulwark/server/egress"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// deliveryWithin bounds how long a queued logout may take to arrive: the
// test retry settings make it a second or two; the bound is generous for
// a loaded machine.
const deliveryWithin = 60 * time.Second

// withBackchannel makes delivery fast for tests and lets it (and every
// other egress, such as jwks_uri) reach loopback servers over plain http.
func withBackchannel(allowed ...netip.Prefix) func(*config) {
	if len(allowed) == 0 {
		allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	return func(c *config) {
		c.testEgress = &egress.Options{AllowHTTP: true, Allowed: allowed}
		c.BackchannelPoll = 200 * time.Millisecond
		c.BackchannelRetryMin = 100 * time.Millisecond
		c.BackchannelRetryMax = 500 * time.Millisecond
		c.BackchannelTimeout = 5 * time.Second
		c.BackchannelLease = 6 * time.Second
	}
}

// sameIssuer makes a replica answer for issuer, as every replica behind
// one load balancer does.
func sameIssuer(issuer string) func(*config) {
	return func(c *config) { c.Issuer = issuer }
}

// runLogouts runs s's delivery worker until the returned stop is called
// or the test ends. app.Run cannot be used: it also binds the listeners.
func runLogouts(t *testing.T, s *e2eServer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.app.logouts.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// logoutToken is what a receiver accepted.
type logoutToken struct {
	Client string
	Claims map[string]any
}

func (l logoutToken) str(name string) string { s, _ := l.Claims[name].(string); return s }

// receiver is a relying party's back-channel logout endpoint. It verifies
// each token as §2.6 asks (signature with the OP's JWKS via jwx, typ,
// iss, aud, iat/exp, events, sub or sid, no nonce) and records the
// accepted ones.
type receiver struct {
	t      *testing.T
	issuer string
	client string
	srv    *http.Server
	url    string

	mu       sync.Mutex
	accepted []logoutToken
	rejected []string
	// hold, when set, is called with the token's jti (not yet verified)
	// before a request is verified and answered (it may block); a request
	// whose sender went away meanwhile is dropped.
	hold func(r *http.Request, jti string)
}

func newReceiver(t *testing.T, issuer, client string) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t, issuer: issuer, client: client, url: "http://" + ln.Addr().String() + "/backchannel-logout"}
	rc.serve(ln)
	return rc
}

func (rc *receiver) serve(ln net.Listener) {
	rc.srv = &http.Server{Handler: http.HandlerFunc(rc.handle), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rc.srv.Serve(ln) }()
	srv := rc.srv
	rc.t.Cleanup(func() { _ = srv.Close() })
}

func (rc *receiver) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		rc.reject(w, "method or content type: "+r.Method+" "+r.Header.Get("Content-Type"))
		return
	}
	if err := r.ParseForm(); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return // cut off by its sender's death: no request at all
		}
		rc.reject(w, "form: "+err.Error())
		return
	}
	raw := r.PostForm.Get("logout_token")
	if rc.hold != nil {
		// Before verifying: a held request's sender may be gone by the
		// time the JWKS would be fetched from it.
		rc.hold(r, unverifiedJTI(raw))
		if r.Context().Err() != nil {
			return
		}
	}
	claims, problem := verifyLogoutToken(rc.issuer, rc.client, raw)
	if problem != "" {
		rc.reject(w, problem)
		return
	}
	rc.mu.Lock()
	rc.accepted = append(rc.accepted, logoutToken{Client: rc.client, Claims: claims})
	rc.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// unverifiedJTI reads the jti of a JWT without verifying it ("" if none).
func unverifiedJTI(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	_ = json.Unmarshal(payload, &claims)
	return claims.JTI
}

func (rc *receiver) reject(w http.ResponseWriter, why string) {
	rc.mu.Lock()
	rc.rejected = append(rc.rejected, why)
	rc.mu.Unlock()
	http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
}

// tokens returns the accepted tokens; any rejected one fails the test.
func (rc *receiver) tokens() []logoutToken {
	rc.t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.rejected) > 0 {
		rc.t.Fatalf("receiver %s rejected logout tokens: %v", rc.client, rc.rejected)
	}
	return slices.Clone(rc.accepted)
}

// waitTokens polls until the receiver accepted n tokens.
func (rc *receiver) waitTokens(n int) []logoutToken {
	rc.t.Helper()
	deadline := time.Now().Add(deliveryWithin)
	for {
		got := rc.tokens()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			rc.t.Fatalf("receiver %s: %d logout tokens after %s, want %d", rc.client, len(got), deliveryWithin, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verifyLogoutToken checks raw as a relying party must (Back-Channel
// Logout 1.0 §2.6) with jwx and the OP's published keys, and returns its
// claims, or a problem.
func verifyLogoutToken(issuer, client, raw string) (map[string]any, string) {
	res, err := http.Get(issuer + "/.well-known/jwks.json")
	if err != nil {
		return nil, "jwks: " + err.Error()
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, "jwks: " + err.Error()
	}
	if _, err := jwt.Parse([]byte(raw), jwt.WithKeySet(set), jwt.WithIssuer(issuer), jwt.WithAudience(client),
		jwt.WithValidate(true), jwt.WithRequiredClaim("iat"), jwt.WithRequiredClaim("exp"), jwt.WithRequiredClaim("jti")); err != nil {
		return nil, "jwx rejects the token: " + err.Error()
	}
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		return nil, err.Error()
	}
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != backchannel.TokenType {
		return nil, "typ " + typ
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err != nil {
		return nil, err.Error()
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err.Error()
	}
	events, _ := claims["events"].(map[string]any)
	if ev, ok := events[backchannel.EventLogout].(map[string]any); !ok || len(ev) != 0 || len(events) != 1 {
		return nil, "events claim"
	}
	if _, has := claims["nonce"]; has {
		return nil, "a logout token must not carry a nonce"
	}
	if claims["sub"] == nil && claims["sid"] == nil {
		return nil, "neither sub nor sid"
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat > 300 || exp <= iat {
		return nil, "exp is not short"
	}
	return claims, ""
}

// addRP registers a confidential code-flow client whose back-channel
// logout URI is uri.
func addRP(t *testing.T, s *e2eServer, id, uri string, sessionRequired bool) *oauth2.Config {
	t.Helper()
	cfg := addCodeClient(t, s, id)
	c, err := s.app.store.ClientByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired = uri, sessionRequired
	if err := s.app.store.UpdateClient(context.Background(), c, c.Version); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// signIn signs alice in at issuer to cfg's client in browser c and returns
// the ID token's sid, verified by go-oidc.
func signIn(t *testing.T, issuer string, c *http.Client, cfg *oauth2.Config) (sid, rawIDToken string) {
	t.Helper()
	ctx := context.Background()
	tok, err := signInWith(ctx, c, issuer, cfg, "alice", e2ePassword)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc rejects the ID token: %v", err)
	}
	var claims struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&claims); err != nil || claims.SID == "" {
		t.Fatalf("ID token without sid: %v", err)
	}
	return claims.SID, raw
}

var logoutHidden = regexp.MustCompile(`name="(csrf_token|id_token_hint|client_id|post_logout_redirect_uri|state)" value="([^"]*)"`)

// rpLogout signs out in browser c through RP-initiated logout.
func rpLogout(t *testing.T, s *e2eServer, c *http.Client, idTokenHint string) {
	t.Helper()
	res, err := c.Get(s.issuer + "/logout?" + url.Values{"id_token_hint": {idTokenHint}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	form := url.Values{}
	for _, m := range logoutHidden.FindAllStringSubmatch(string(body), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if form.Get("csrf_token") == "" || form.Get("id_token_hint") == "" {
		t.Fatalf("logout page (%d) without its form: %.300s", res.StatusCode, body)
	}
	res, err = c.PostForm(s.issuer+"/logout", form)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("logout: %d", res.StatusCode)
	}
}

func aliceID(t *testing.T, s *e2eServer) string {
	t.Helper()
	u, err := s.app.store.UserByUsername(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func usersKey(t *testing.T, s *e2eServer) string {
	t.Helper()
	tok, _, err := s.app.apiKeys.Create(context.Background(), apikeys.CreateRequest{
		Name: "ops", OwnerType: apikeys.OwnerService, OwnerID: "ops", Scopes: []string{apikeys.ScopeUsers}, CreatedBy: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// waitOutboxEmpty polls until the outbox is empty.
func waitOutboxEmpty(t *testing.T, st interface {
	PendingLogouts(ctx context.Context) (int64, error)
}) {
	t.Helper()
	deadline := time.Now().Add(deliveryWithin)
	for {
		n, err := st.PendingLogouts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d logouts still pending after %s", n, deliveryWithin)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func auditEvents(t *testing.T, s *e2eServer, event string) []*storage.AuditEvent {
	t.Helper()
	evs, err := s.app.store.ListAudit(context.Background(), storage.AuditFilter{Event: event, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestE2EBackchannelLogoutTriggers(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn, withBackchannel())
	runLogouts(t, s)
	ctx := context.Background()
	alice := aliceID(t, s)
	key := usersKey(t, s)

	provider, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Supported        bool     `json:"backchannel_logout_supported"`
		SessionSupported bool     `json:"backchannel_logout_session_supported"`
		Claims           []string `json:"claims_supported"`
	}
	if err := provider.Claims(&meta); err != nil || !meta.Supported || !meta.SessionSupported || !slices.Contains(meta.Claims, "sid") {
		t.Fatalf("discovery: %+v %v", meta, err)
	}

	rcA := newReceiver(t, s.issuer, "rp-a")
	rcB := newReceiver(t, s.issuer, "rp-b")
	rpA := addRP(t, s, "rp-a", rcA.url, true)
	rpB := addRP(t, s, "rp-b", rcB.url, false)
	// A client without a URI gets nothing and breaks nothing.
	rpC := addCodeClient(t, s, "rp-c")

	// signInAll signs alice in to every RP in a fresh browser.
	signInAll := func() (*http.Client, string, string) {
		b := jarClient(s.issuer)
		sidA, hint := signIn(t, s.issuer, b, rpA)
		sidB, _ := signIn(t, s.issuer, b, rpB)
		sidC, _ := signIn(t, s.issuer, b, rpC)
		if sidA != sidB || sidA != sidC {
			t.Fatalf("one login session, three sids: %s %s %s", sidA, sidB, sidC)
		}
		return b, sidA, hint
	}
	// expect waits for the next token at each receiver and checks it.
	expect := func(t *testing.T, rc *receiver, seen int, sid string) logoutToken {
		t.Helper()
		got := rc.waitTokens(seen + 1)
		if len(got) != seen+1 {
			t.Fatalf("%s: %d tokens, want %d", rc.client, len(got), seen+1)
		}
		tok := got[seen]
		if tok.str("sub") != alice || tok.str("sid") != sid || tok.str("aud") != rc.client || tok.str("iss") != s.issuer {
			t.Fatalf("%s: claims %v, want sub %s sid %q", rc.client, tok.Claims, alice, sid)
		}
		return tok
	}
	seenA, seenB := 0, 0

	t.Run("case=RP-initiated logout", func(t *testing.T) {
		b, sid, hint := signInAll()
		rpLogout(t, s, b, hint)
		// One session ends: both clients are told which one.
		expect(t, rcA, seenA, sid)
		expect(t, rcB, seenB, sid)
		seenA, seenB = seenA+1, seenB+1
	})
	t.Run("case=admin session revocation", func(t *testing.T) {
		_, sid, _ := signInAll()
		st, out := adminDo(t, http.MethodDelete, s.adminURL+"/admin/v1/users/"+alice+"/sessions", key, "")
		if st != http.StatusOK || out["backchannel_logouts_queued"] != float64(2) {
			t.Fatalf("revoke sessions: %d %v", st, out)
		}
		// User-wide: rp-a (sid required) hears of the session, rp-b of
		// the subject.
		expect(t, rcA, seenA, sid)
		expect(t, rcB, seenB, "")
		seenA, seenB = seenA+1, seenB+1
	})
	t.Run("case=user disabled", func(t *testing.T) {
		_, sid, _ := signInAll()
		if st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/users/"+alice+"/disable", key, ""); st != http.StatusOK {
			t.Fatalf("disable: %d %v", st, out)
		}
		expect(t, rcA, seenA, sid)
		expect(t, rcB, seenB, "")
		seenA, seenB = seenA+1, seenB+1
		if st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/users/"+alice+"/enable", key, ""); st != http.StatusOK {
			t.Fatalf("enable: %d %v", st, out)
		}
	})
	t.Run("case=password reset", func(t *testing.T) {
		_, sid, _ := signInAll()
		st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/users/"+alice+"/password", key, "")
		if st != http.StatusOK {
			t.Fatalf("reset: %d %v", st, out)
		}
		expect(t, rcA, seenA, sid)
		expect(t, rcB, seenB, "")
		seenA, seenB = seenA+1, seenB+1
		// Back to the password the other cases sign in with.
		u, err := s.app.store.UserByID(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		u.PasswordHash = cheapHash(t, e2ePassword)
		if err := s.app.store.UpdateUser(ctx, u, u.Version); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("case=consent revocation", func(t *testing.T) {
		_, sid, _ := signInAll()
		if st, out := adminDo(t, http.MethodDelete, s.adminURL+"/admin/v1/users/"+alice+"/consents/rp-b", key, ""); st != http.StatusOK {
			t.Fatalf("revoke consent: %d %v", st, out)
		}
		// Only the client whose consent ended is told.
		expect(t, rcB, seenB, "")
		seenB++
		waitOutboxEmpty(t, s.app.store)
		if got := rcA.tokens(); len(got) != seenA {
			t.Fatalf("rp-a was told of rp-b's consent revocation: %v", got[seenA:])
		}
		// rp-a's session lives on and is told when it ends.
		st, out := adminDo(t, http.MethodDelete, s.adminURL+"/admin/v1/users/"+alice+"/sessions", key, "")
		if st != http.StatusOK || out["backchannel_logouts_queued"] != float64(1) {
			t.Fatalf("revoke sessions: %d %v", st, out)
		}
		expect(t, rcA, seenA, sid)
		seenA++
	})

	waitOutboxEmpty(t, s.app.store)
	jtis := map[string]bool{}
	for _, tok := range append(rcA.tokens(), rcB.tokens()...) {
		if jtis[tok.str("jti")] {
			t.Fatalf("jti %s delivered twice", tok.str("jti"))
		}
		jtis[tok.str("jti")] = true
	}
	// The worker records a delivery after the receiver answered and the
	// outbox row is gone: wait for the record rather than race it.
	if !eventually(func() bool { return len(auditEvents(t, s, "backchannel_logout.delivered")) >= len(jtis) }) {
		t.Fatalf("delivered audit events never reached %d tokens", len(jtis))
	}
	if n := len(auditEvents(t, s, "backchannel_logout.delivered")); n != len(jtis) {
		t.Fatalf("%d delivered audit events for %d tokens", n, len(jtis))
	}
	if f := counter(t, s, "bulwark_backchannel_logout_deliveries_total", "outcome", "delivered"); int(f) != len(jtis) {
		t.Fatalf("delivered metric %v, want %d", f, len(jtis))
	}
}

func TestE2EBackchannelReceiverDownThenBack(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn, withBackchannel())
	runLogouts(t, s)
	// The receiver's address is known but nothing listens there yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	rc := &receiver{t: t, issuer: s.issuer, client: "rp-down", url: "http://" + addr + "/backchannel-logout"}
	rp := addRP(t, s, "rp-down", rc.url, true)

	b := jarClient(s.issuer)
	sid, hint := signIn(t, s.issuer, b, rp)
	rpLogout(t, s, b, hint)

	// Failed attempts are audited (and counted) while it is down.
	deadline := time.Now().Add(deliveryWithin)
	for len(auditEvents(t, s, "backchannel_logout.failed")) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no failed deliveries audited while the receiver is down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, e := range auditEvents(t, s, "backchannel_logout.failed") {
		if e.ClientID != "rp-down" || e.Outcome != "failure" || e.Details["reason"] != "connection_failed" {
			t.Fatalf("failure audit: %+v", e)
		}
	}
	if f := counter(t, s, "bulwark_backchannel_logout_failures_total", "reason", "connection_failed"); f < 3 {
		t.Fatalf("failure metric %v", f)
	}

	// It comes back on the same address and gets the token.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc.serve(ln)
	got := rc.waitTokens(1)
	if got[0].str("sid") != sid {
		t.Fatalf("token %v, want sid %s", got[0].Claims, sid)
	}
	waitOutboxEmpty(t, s.app.store)
	if got := rc.tokens(); len(got) != 1 {
		t.Fatalf("%d tokens after recovery", len(got))
	}
}

func TestE2EBackchannelReplicaKilledMidDelivery(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a := startE2E(t, dsn, withBackchannel())
	b := startE2E(t, dsn, withBackchannel(), sameIssuer(a.issuer))
	rc := newReceiver(t, a.issuer, "rp-k")
	// The first delivery blocks until its sender goes away.
	firstJTI := make(chan string, 1)
	var calls atomic.Int32
	rc.hold = func(r *http.Request, jti string) {
		if calls.Add(1) == 1 {
			firstJTI <- jti
			<-r.Context().Done()
		}
	}
	rp := addRP(t, a, "rp-k", rc.url, true)
	// Both replicas share the database, so b signs with the key a
	// publishes, as a's issuer.
	stopA := runLogouts(t, a)

	br := jarClient(a.issuer)
	sid, hint := signIn(t, a.issuer, br, rp)
	rpLogout(t, a, br, hint)

	var jti string
	select {
	case jti = <-firstJTI:
	case <-time.After(deliveryWithin):
		t.Fatal("replica a never started the delivery")
	}
	// Kill a while it holds the claimed row: its worker stops and its
	// database connections close; it cannot finish or release the row.
	stopA()
	a.app.Close()

	// b takes the row over once a's lease runs out and delivers it.
	runLogouts(t, b)
	got := rc.waitTokens(1)
	if got[0].str("jti") != jti || got[0].str("sid") != sid {
		t.Fatalf("redelivered token %v, want jti %s sid %s", got[0].Claims, jti, sid)
	}
	waitOutboxEmpty(t, b.app.store)
	if got := rc.tokens(); len(got) != 1 {
		t.Fatalf("%d tokens accepted, want 1", len(got))
	}
}

func TestE2EBackchannelExactlyOnceAcrossReplicas(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn, withBackchannel())
	reps := []*e2eServer{s, startE2E(t, dsn, withBackchannel(), sameIssuer(s.issuer)), startE2E(t, dsn, withBackchannel(), sameIssuer(s.issuer))}
	for _, r := range reps {
		runLogouts(t, r)
	}
	rc := newReceiver(t, s.issuer, "rp-x")
	rp := addRP(t, s, "rp-x", rc.url, true)
	const users = 8
	addUsers(t, s, "bc", users)
	for i := range users {
		name := fmt.Sprintf("bc-%03d", i)
		// Two sessions per user, so user-wide logouts queue two rows each.
		for range 2 {
			if _, err := browserSignIn(context.Background(), s.issuer, rp, name, userPassword(name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	key := usersKey(t, s)
	// Revoke every user's sessions at once, through every replica.
	runPool(users, users, func(i int) error {
		id := fmt.Sprintf("id-bc-%03d", i)
		st, out := adminDo(t, http.MethodDelete, reps[i%len(reps)].adminURL+"/admin/v1/users/"+id+"/sessions", key, "")
		if st != http.StatusOK || out["backchannel_logouts_queued"] != float64(2) {
			t.Errorf("revoke %s: %d %v", id, st, out)
		}
		return nil
	})
	rc.waitTokens(2 * users)
	waitOutboxEmpty(t, s.app.store)
	got := rc.tokens()
	if len(got) != 2*users {
		t.Fatalf("%d tokens for %d logouts", len(got), 2*users)
	}
	jtis, sids := map[string]int{}, map[string]int{}
	for _, tok := range got {
		jtis[tok.str("jti")]++
		sids[tok.str("sid")]++
	}
	for jti, n := range jtis {
		if n != 1 {
			t.Fatalf("jti %s delivered %d times", jti, n)
		}
	}
	if len(sids) != 2*users {
		t.Fatalf("%d distinct sids for %d sessions", len(sids), 2*users)
	}
}

func TestE2EBackchannelForbiddenAddressNeverConnected(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	// Only 127.0.0.1 may be reached; the relying party sits on 127.0.0.2.
	s := startE2E(t, dsn, withBackchannel(netip.MustParsePrefix("127.0.0.1/32")))
	runLogouts(t, s)
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	rc := &receiver{t: t, issuer: s.issuer, client: "rp-ssrf", url: "http://" + ln.Addr().String() + "/backchannel-logout"}
	rc.serve(counted)
	rp := addRP(t, s, "rp-ssrf", rc.url, true)

	b := jarClient(s.issuer)
	_, hint := signIn(t, s.issuer, b, rp)
	rpLogout(t, s, b, hint)

	deadline := time.Now().Add(deliveryWithin)
	for {
		evs := auditEvents(t, s, "backchannel_logout.failed")
		if len(evs) >= 2 {
			for _, e := range evs {
				if e.Details["reason"] != "forbidden_address" || e.ClientID != "rp-ssrf" {
					t.Fatalf("failure audit: %+v", e)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no audited failure for the forbidden address")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if f := counter(t, s, "bulwark_backchannel_logout_failures_total", "reason", "forbidden_address"); f < 2 {
		t.Fatalf("forbidden_address metric %v", f)
	}
	if n := counted.accepted.Load(); n != 0 {
		t.Fatalf("the forbidden receiver accepted %d connections", n)
	}
	if got := rc.tokens(); len(got) != 0 {
		t.Fatalf("tokens reached the forbidden receiver: %v", got)
	}
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}
