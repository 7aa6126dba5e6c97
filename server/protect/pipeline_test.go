package protect

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/bulwark-auth/bulwark/keys/apikey"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// TestStrictInputRefusesBadBytes: NUL and invalid UTF-8 anywhere in a
// request are refused with 400 in the route's format, and the handler never
// runs.
func TestStrictInputRefusesBadBytes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, target, ctype, body string
		header                    [2]string
		basicUser                 string
	}{
		{name: "case=query-nul", target: "/x?a=b%00c"},
		{name: "case=query-bad-utf8", target: "/x?a=%ff"},
		{name: "case=query-name-nul", target: "/x?a%00=b"},
		{name: "case=path-nul", target: "/x%00y"},
		{name: "case=header-bad-utf8", target: "/x", header: [2]string{"User-Agent", "a\xffb"}},
		{name: "case=basic-nul", target: "/x", basicUser: "svc\x00"},
		{name: "case=basic-encoded-nul", target: "/x", basicUser: "svc%00"},
		{name: "case=form-nul", target: "/x", ctype: formType, body: "client_id=a%00"},
		{name: "case=form-bad-utf8", target: "/x", ctype: formType, body: "username=%c3%28"},
		{name: "case=json-nul-escape", target: "/x", ctype: "application/json", body: `{"a":"\u0000"}`},
		{name: "case=json-bad-utf8", target: "/x", ctype: "application/json", body: "{\"a\":\"\xff\"}"},
	}
	for _, kind := range []Kind{API, Page} {
		ran := false
		h := StrictInput(InputConfig{Response: kind, ContentTypes: []string{formType, "application/json"}})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
		for _, tc := range cases {
			var body io.Reader
			method := http.MethodGet
			if tc.body != "" {
				body, method = strings.NewReader(tc.body), http.MethodPost
			}
			r := httptest.NewRequest(method, tc.target, body)
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			if tc.header[0] != "" {
				r.Header.Set(tc.header[0], tc.header[1])
			}
			if tc.basicUser != "" {
				r.SetBasicAuth(tc.basicUser, "pw")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusBadRequest || ran {
				t.Fatalf("%s (kind %d): status %d, handler ran %v", tc.name, kind, w.Code, ran)
			}
			wantType := "application/json;charset=UTF-8"
			if kind == Page {
				wantType = "text/html; charset=utf-8"
			}
			if ct := w.Header().Get("Content-Type"); ct != wantType {
				t.Fatalf("%s: Content-Type %q, want %q", tc.name, ct, wantType)
			}
			if !strings.Contains(w.Body.String(), "NUL byte or invalid UTF-8") {
				t.Fatalf("%s: unspecific message %q", tc.name, w.Body.String())
			}
		}
	}
}

// TestStrictInputRecordsClaimedClientID: every way a client names itself
// ends up in reqinfo, read once, with the body intact for the handler.
func TestStrictInputRecordsClaimedClientID(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertion, err := josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: "jwt-iss", Subject: "jwt-client", Expiry: josejwt.NewNumericDate(time.Now().Add(time.Minute))}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	issOnly, err := josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: "iss-client"}).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	ak, err := apikey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, target, body, user, bearer, want string
	}{
		{name: "case=basic", method: "POST", target: "/", body: "client_id=other", user: "c1", want: "c1"},
		{name: "case=basic-form-encoded", method: "POST", target: "/", user: "sp%20ace", want: "sp ace"},
		{name: "case=client_secret_post", method: "POST", target: "/", body: "grant_type=x&client_id=c2&client_secret=s", want: "c2"},
		{name: "case=private_key_jwt", method: "POST", target: "/", body: "client_assertion_type=x&client_assertion=" + assertion, want: "jwt-client"},
		{name: "case=assertion-iss-only", method: "POST", target: "/", body: "client_assertion=" + issOnly, want: "iss-client"},
		{name: "case=assertion-garbage", method: "POST", target: "/", body: "client_assertion=not.a.jwt", want: ""},
		{name: "case=query", method: "GET", target: "/?client_id=c5&response_type=code", want: "c5"},
		{name: "case=api-key", method: "POST", target: "/", bearer: ak.String(), want: "apikey:" + ak.ID},
		{name: "case=anonymous", method: "POST", target: "/", body: "a=b", want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got, body string
			h := pipelined(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				got = reqinfo.ClaimedClientID(r.Context())
				b, _ := io.ReadAll(r.Body)
				body = string(b)
			}))
			var rb io.Reader
			if tc.body != "" {
				rb = strings.NewReader(tc.body)
			}
			r := httptest.NewRequest(tc.method, tc.target, rb)
			r.RemoteAddr = "192.0.2.1:1234"
			if tc.body != "" {
				r.Header.Set("Content-Type", formType)
			}
			if tc.user != "" {
				r.SetBasicAuth(tc.user, "pw")
			}
			if tc.bearer != "" {
				r.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tc.want || body != tc.body {
				t.Fatalf("claimed %q (want %q), handler body %q (want %q)", got, tc.want, body, tc.body)
			}
		})
	}
}

// TestDetectorOffenderRules: stuffing counts distinct accounts per address;
// one user failing repeatedly does not block the address; alert-only
// thresholds alert without blocking; never-block networks are never
// blocked, automatically or by hand.
func TestDetectorOffenderRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	log, _ := test.NewNullLogger()
	var mu sync.Mutex
	var placed, alerts []string
	var events []storage.AuditEvent
	d, err := NewDetector(DetectorConfig{
		Store: newBlockStore(), Log: log, Now: clk.Now,
		PerIP: map[Signal]Threshold{SignalFailedLogin: {Count: 3, Window: time.Minute, BlockFor: time.Minute, Distinct: true}},
		PerClient: map[Signal]Threshold{
			SignalRefreshReuse: {Count: 2, Window: time.Minute, BlockFor: time.Minute, AlertOnly: true},
		},
		NeverBlock: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
		OnPlaced:   func(kind string, sig Signal) { mu.Lock(); placed = append(placed, kind+"/"+string(sig)); mu.Unlock() },
		OnAlert:    func(kind string, sig Signal) { mu.Lock(); alerts = append(alerts, kind+"/"+string(sig)); mu.Unlock() },
		Audit: func(_ context.Context, e storage.AuditEvent) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	typo := netip.MustParseAddr("192.0.2.10")
	for range 10 {
		d.ObserveLogin(ctx, typo, "Alice")
		d.ObserveLogin(ctx, typo, "alice ")
	}
	if d.Blocked(BlockIP, typo.String()) {
		t.Fatal("one user failing repeatedly must not block the address")
	}
	stuffer := netip.MustParseAddr("192.0.2.66")
	for _, acct := range []string{"a", "b", "c"} {
		d.ObserveLogin(ctx, stuffer, acct)
	}
	if !d.Blocked(BlockIP, stuffer.String()) {
		t.Fatal("failures across 3 distinct accounts must block the address")
	}
	office := netip.MustParseAddr("198.51.100.7")
	for _, acct := range []string{"a", "b", "c", "d"} {
		d.ObserveLogin(ctx, office, acct)
	}
	if d.Blocked(BlockIP, office.String()) {
		t.Fatal("a never-block network was blocked")
	}
	if err := d.Block(ctx, BlockIP, office.String(), "by hand", time.Minute); err == nil {
		t.Fatal("a manual block of a never-block address must be refused")
	}
	for range 2 {
		d.Observe(ctx, SignalRefreshReuse, netip.Addr{}, "buggy")
	}
	if d.Blocked(BlockClient, "buggy") {
		t.Fatal("an alert-only threshold blocked the client")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(placed) != 1 || placed[0] != "ip/failed_login" || len(alerts) != 1 || alerts[0] != "client/refresh_reuse" {
		t.Fatalf("placed %v alerts %v", placed, alerts)
	}
	var sawAlert bool
	for _, e := range events {
		sawAlert = sawAlert || (e.Event == "anomaly.alert" && e.ClientID == "buggy")
	}
	if !sawAlert {
		t.Fatalf("no anomaly.alert audit event: %+v", events)
	}
}

// TestIPResolverReportsUntrustedForwarded: forwarded headers from a peer
// that is not a trusted proxy are ignored and reported; from a trusted
// proxy they are believed and not reported.
func TestIPResolverReportsUntrustedForwarded(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var peers []string
	res := NewIPResolver([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}).OnUntrustedForwarded(func(p netip.Addr) {
		mu.Lock()
		peers = append(peers, p.String())
		mu.Unlock()
	})
	cases := []struct {
		remote, header, value, want string
		reported                    bool
	}{
		{"203.0.113.9:1", "X-Forwarded-For", "198.51.100.1", "203.0.113.9", true},
		{"203.0.113.9:1", "Forwarded", "for=198.51.100.1", "203.0.113.9", true},
		{"203.0.113.9:1", "", "", "203.0.113.9", false},
		{"10.1.2.3:1", "X-Forwarded-For", "198.51.100.1", "198.51.100.1", false},
	}
	for _, tc := range cases {
		mu.Lock()
		before := len(peers)
		mu.Unlock()
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.header != "" {
			r.Header.Set(tc.header, tc.value)
		}
		if got := res.IP(r).String(); got != tc.want {
			t.Fatalf("%s %s: IP %s, want %s", tc.remote, tc.header, got, tc.want)
		}
		mu.Lock()
		reported := len(peers) > before
		mu.Unlock()
		if reported != tc.reported {
			t.Fatalf("%s %s: reported %v, want %v", tc.remote, tc.header, reported, tc.reported)
		}
	}
}
