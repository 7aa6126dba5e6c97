package protect

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoBody answers 200 with the request body it received, proving the body
// survived the middleware.
var echoBody = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	_, _ = w.Write(b)
})

func postForm(t *testing.T, srv *httptest.Server, user string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, "secret")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// failOn answers 401 when the form says fail=1 (a failed authentication)
// and echoes the body otherwise.
var failOn = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if strings.Contains(string(b), "fail=1") {
		w.WriteHeader(http.StatusUnauthorized)
	}
	_, _ = w.Write(b)
})

// TestLimiterPerIPCountsFailuresOnly: successes from one address never take
// from its budget (thousands of users behind one NAT); failures do, and a
// spent budget refuses the address until it refills.
func TestLimiterPerIPCountsFailuresOnly(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var mu sync.Mutex
	var blockedKeys []string
	l := NewLimiter(RateConfig{
		PerIP: map[string]Limit{ClassToken: {Rate: 0.5, Burst: 2}},
		Now:   clk.Now,
		OnBlock: func(_ *http.Request, key string) {
			mu.Lock()
			blockedKeys = append(blockedKeys, key)
			mu.Unlock()
		},
	})
	srv := httptest.NewServer(pipelined(l.Failures(ClassToken, API)(failOn)))
	defer srv.Close()

	for i := 0; i < 50; i++ {
		if resp := postForm(t, srv, "", url.Values{"a": {"1"}}); resp.StatusCode != 200 {
			t.Fatalf("success %d: status %d; successes must not count per address", i, resp.StatusCode)
		}
	}
	for i := 0; i < 2; i++ {
		if resp := postForm(t, srv, "", url.Values{"fail": {"1"}}); resp.StatusCode != 401 {
			t.Fatalf("failure %d within budget: status %d", i, resp.StatusCode)
		}
	}
	resp := postForm(t, srv, "", url.Values{"a": {"1"}})
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("budget spent: status %d, want 429", resp.StatusCode)
	}
	// One token needs 2 s at 0.5/s.
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Fatalf("Retry-After = %q, want 2", ra)
	}
	if e := decodeOAuthError(t, resp); e.Error != "rate_limited" || e.Description == "" {
		t.Fatalf("body = %+v", e)
	}
	if len(blockedKeys) != 1 || blockedKeys[0] != "token:ip:127.0.0.1" {
		t.Fatalf("OnBlock keys = %v", blockedKeys)
	}
	if class, source := SplitKey(blockedKeys[0]); class != ClassToken || source != "ip:127.0.0.1" {
		t.Fatalf("SplitKey = %q, %q", class, source)
	}
	clk.Advance(2 * time.Second) // refilled one token
	if resp := postForm(t, srv, "", url.Values{"a": {"1"}}); resp.StatusCode != 200 {
		t.Fatalf("after refill: status %d", resp.StatusCode)
	}
	if resp := postForm(t, srv, "", url.Values{"fail": {"1"}}); resp.StatusCode != 401 {
		t.Fatalf("failure after refill: status %d", resp.StatusCode)
	}
	if resp := postForm(t, srv, "", nil); resp.StatusCode != 429 {
		t.Fatalf("after the refilled token was failed away: status %d, want 429", resp.StatusCode)
	}
	// Another class is not limited by this configuration.
	other := httptest.NewServer(pipelined(l.Failures(ClassIntrospect, API)(failOn)))
	defer other.Close()
	if resp := postForm(t, other, "", nil); resp.StatusCode != 200 {
		t.Fatalf("unconfigured class: status %d", resp.StatusCode)
	}
}

func TestLimiterPerClientAndOverride(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := NewLimiter(RateConfig{
		PerClient:       map[string]Limit{ClassToken: {Rate: 1, Burst: 1}},
		ClientOverrides: map[string]Limit{"big": {Rate: 1, Burst: 5}},
		Now:             clk.Now,
	})
	srv := httptest.NewServer(pipelined(l.Middleware(ClassToken, API)(echoBody)))
	defer srv.Close()

	cases := []struct {
		name    string
		user    string
		form    url.Values
		allowed int
	}{
		{"case=basic-auth-client", "small", nil, 1},
		{"case=form-client-id", "", url.Values{"client_id": {"formclient"}, "grant_type": {"client_credentials"}}, 1},
		{"case=override", "big", nil, 5},
		{"case=basic-auth-encoded", "sp%20ace", nil, 1},
	}
	for _, tc := range cases {
		for i := 0; i < tc.allowed; i++ {
			resp := postForm(t, srv, tc.user, tc.form)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: request %d: status %d", tc.name, i, resp.StatusCode)
			}
			if b, _ := io.ReadAll(resp.Body); string(b) != tc.form.Encode() {
				t.Fatalf("%s: handler saw body %q, want %q", tc.name, b, tc.form.Encode())
			}
		}
		if resp := postForm(t, srv, tc.user, tc.form); resp.StatusCode != 429 {
			t.Fatalf("%s: request %d: status %d, want 429", tc.name, tc.allowed, resp.StatusCode)
		}
	}
	// Anonymous requests have no client bucket.
	for i := 0; i < 3; i++ {
		if resp := postForm(t, srv, "", nil); resp.StatusCode != 200 {
			t.Fatalf("anonymous: status %d", resp.StatusCode)
		}
	}
}

func TestLimiterMemoryBounded(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := NewLimiter(RateConfig{PerIP: map[string]Limit{ClassLogin: {Rate: 1, Burst: 1}}, MaxBuckets: 100, Now: clk.Now})
	h := pipelined(l.Failures(ClassLogin, API)(failOn))
	for i := 0; i < 1000; i++ {
		r := httptest.NewRequest("GET", "/?fail=1", nil)
		r.RemoteAddr = "192.0.2." + strconv.Itoa(i%250) + ":1"
		if i >= 250 {
			r.RemoteAddr = "[2001:db8::" + strconv.Itoa(i) + "]:1"
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if n := l.Len(); n > 100 {
		t.Fatalf("buckets = %d, want <= 100", n)
	}
	// Idle buckets that refilled are dropped on the next sweep.
	clk.Advance(time.Minute)
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "198.51.100.1:1"
	h.ServeHTTP(httptest.NewRecorder(), r)
	if n := l.Len(); n != 1 {
		t.Fatalf("buckets after idle sweep = %d, want 1", n)
	}
}

func BenchmarkLimiterMiddleware(b *testing.B) {
	l := NewLimiter(RateConfig{
		PerIP:     map[string]Limit{ClassToken: {Rate: 1e9, Burst: 1 << 30}},
		PerClient: map[string]Limit{ClassToken: {Rate: 1e9, Burst: 1 << 30}},
	})
	h := pipelined(l.Failures(ClassToken, API)(l.Middleware(ClassToken, API)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))))
	req := httptest.NewRequest("POST", "/oauth2/token", nil)
	req.SetBasicAuth("svc", "pw")
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// TestLimiterPerAccount: attempts naming one account are limited whatever
// their address; other accounts from the same address are not affected.
func TestLimiterPerAccount(t *testing.T) {
	t.Parallel()
	clk := newClock()
	l := NewLimiter(RateConfig{PerAccount: map[string]Limit{ClassLogin: {Rate: 0.01, Burst: 2}}, Now: clk.Now})
	srv := httptest.NewServer(pipelined(l.Middleware(ClassLogin, Page)(echoBody)))
	defer srv.Close()
	for i := range 2 {
		if resp := postForm(t, srv, "", url.Values{"username": {"Alice"}}); resp.StatusCode != 200 {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	// The account is normalized like the guard's key.
	if resp := postForm(t, srv, "", url.Values{"username": {" alice"}}); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third attempt for the account: %d, want 429", resp.StatusCode)
	}
	if resp := postForm(t, srv, "", url.Values{"username": {"bob"}}); resp.StatusCode != 200 {
		t.Fatalf("another account from the same address: %d", resp.StatusCode)
	}
}

// TestLimiterMalformedRequestsCount: placed before StrictInput (as the
// server does), the failure budget counts requests refused as malformed.
func TestLimiterMalformedRequestsCount(t *testing.T) {
	t.Parallel()
	l := NewLimiter(RateConfig{PerIP: map[string]Limit{ClassToken: {Rate: 0.001, Burst: 2}}, Now: newClock().Now})
	srv := httptest.NewServer(withInfo(l.Failures(ClassToken, API)(StrictInput(InputConfig{})(echoBody))))
	defer srv.Close()
	dup := func() *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("scope=a&scope=b"))
		req.Header.Set("Content-Type", formType)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for i := range 2 {
		if resp := dup(); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("malformed %d: %d", i, resp.StatusCode)
		}
	}
	if resp := postForm(t, srv, "", url.Values{"a": {"1"}}); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after two malformed requests the budget is spent: %d", resp.StatusCode)
	}
}
