package main

// Failure behaviour under load: the database restarted while tokens are
// being issued, and SIGTERM while tokens are being issued. Figures are
// logged (t.Logf) for docs/performance.md; nothing here asserts a time.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// loadResult is one answered (or failed) token request of a tokenLoad.
type loadResult struct {
	done       time.Time
	latency    time.Duration
	status     int // 0: transport error
	retryAfter string
	errCode    string
	token      string
}

// tokenLoad keeps workers asking for client_credentials tokens over
// keep-alive connections until stopped, recording every outcome.
type tokenLoad struct {
	mu      sync.Mutex
	results []loadResult
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startTokenLoad(tokenURL, id, secret string, workers int) *tokenLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &tokenLoad{cancel: cancel}
	tr := &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}.Encode()
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(id, secret)
				start := time.Now()
				res, err := client.Do(req)
				if ctx.Err() != nil {
					return // stopped: this request is not part of the run
				}
				r := loadResult{done: time.Now(), latency: time.Since(start)}
				if err == nil {
					var body struct {
						AccessToken string `json:"access_token"`
						Error       string `json:"error"`
					}
					_ = json.NewDecoder(res.Body).Decode(&body)
					_ = res.Body.Close()
					r.status, r.retryAfter, r.errCode, r.token = res.StatusCode, res.Header.Get("Retry-After"), body.Error, body.AccessToken
				}
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				if err != nil {
					// The listener is gone (shutdown): do not spin.
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

// count returns how many requests that finished at or after since got
// status.
func (l *tokenLoad) count(since time.Time, status int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.results {
		if r.status == status && !r.done.Before(since) {
			n++
		}
	}
	return n
}

// stop ends the load and returns every outcome.
func (l *tokenLoad) stop() []loadResult {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// waitFor polls cond with a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// percentile returns the p-th percentile (0..1) of d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[int(p*float64(len(d)-1))]
}

// The database goes away mid-run (a real restart of a private Postgres
// cluster, fast shutdown) and comes back: every request is answered 200
// or 503 with Retry-After and temporarily_unavailable (never 500, never a
// hung connection), the server recovers by itself, and every token that
// was answered 200 introspects active afterwards.
func TestE2EPostgresRestartUnderLoad(t *testing.T) {
	pg := pgtest.NewCluster(t)
	s := startE2E(t, pg.DSN(), func(c *config) { c.RateLimits, c.ClientRateLimits = nil, nil })
	load := startTokenLoad(s.issuer+"/oauth2/token", "svc", e2eSvcSecret, 8)
	defer load.stop()

	waitFor(t, "tokens before the outage", func() bool { return load.count(time.Time{}, http.StatusOK) >= 50 })
	stopAt := time.Now()
	pg.Stop()
	downAt := time.Now()
	waitFor(t, "503 answers while the database is down", func() bool { return load.count(downAt, http.StatusServiceUnavailable) >= 50 })
	pg.Start()
	upAt := time.Now()
	waitFor(t, "tokens after the database returned", func() bool { return load.count(upAt, http.StatusOK) >= 50 })
	res := load.stop()

	var down []time.Duration
	firstOK := time.Time{}
	okTokens := []string{}
	for i, r := range res {
		switch {
		case r.status == http.StatusOK && r.token != "":
			okTokens = append(okTokens, r.token)
			if r.done.After(upAt) && (firstOK.IsZero() || r.done.Before(firstOK)) {
				firstOK = r.done
			}
		case r.status == http.StatusServiceUnavailable:
			if r.retryAfter == "" || r.errCode != "temporarily_unavailable" {
				t.Fatalf("request %d: 503 without Retry-After or temporarily_unavailable (%q, %q)", i, r.retryAfter, r.errCode)
			}
			if r.done.After(downAt) && r.done.Before(upAt) {
				down = append(down, r.latency)
			}
		default:
			t.Fatalf("request %d: status %d (error %q); want 200 or 503", i, r.status, r.errCode)
		}
	}
	t.Logf("%d requests: %d tokens; while down %d answered 503, latency p50 %v p99 %v max %v; stop took %v; first token %v after the database accepted connections again",
		len(res), len(okTokens), len(down), percentile(down, 0.5), percentile(down, 0.99), percentile(down, 1),
		downAt.Sub(stopAt).Round(time.Millisecond), firstOK.Sub(upAt).Round(time.Millisecond))

	// Every token answered 200 is in the database: introspection (which
	// reads the token's row) says active.
	inactive := make(chan string, len(okTokens))
	var wg sync.WaitGroup
	next := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tok := range next {
				if !introspectActive(s.issuer, tok) {
					inactive <- tok
				}
			}
		}()
	}
	for _, tok := range okTokens {
		next <- tok
	}
	close(next)
	wg.Wait()
	close(inactive)
	if n := len(inactive); n > 0 {
		t.Fatalf("%d of %d tokens answered 200 do not introspect active", n, len(okTokens))
	}
}

// introspectActive introspects tok as svc; any failure counts as inactive.
func introspectActive(issuer, tok string) bool {
	req, _ := http.NewRequest(http.MethodPost, issuer+"/oauth2/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("svc", e2eSvcSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer res.Body.Close()
	var out map[string]any
	return res.StatusCode == http.StatusOK && json.NewDecoder(res.Body).Decode(&out) == nil && out["active"] == true
}

// SIGTERM while tokens are being issued, to the real binary on Postgres:
// /readyz turns 503 first while tokens are still issued, a request in
// flight when the listeners close completes with its token, no request
// fails before the shutdown delay ends, nothing answers 5xx, and the
// process exits 0.
func TestShutdownUnderLoad(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	bin := buildBinary(t)
	seed := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(seed, []byte(e2eSeed), 0o600); err != nil {
		t.Fatal(err)
	}
	const delay = 2 * time.Second
	unlimited := "token=1000000:1000000,introspect=1000000:1000000"
	p := startServe(t, bin, []string{"BULWARK_SECRET=e2e-master-secret-0123456789-abcdefghijklmnop"},
		"--database-url", dsn, "--migrate", "--seed", seed,
		"--issuer", "http://127.0.0.1:4444", "--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--rate-limits", unlimited, "--client-rate-limits", unlimited,
		"--shutdown-delay", delay.String(), "--log-format", "json", "--log-level", "info")
	pub, adm := p.public, p.admin

	load := startTokenLoad("http://"+pub+"/oauth2/token", "svc", e2eSvcSecret, 8)
	defer load.stop()
	waitFor(t, "tokens before SIGTERM", func() bool { return load.count(time.Time{}, http.StatusOK) >= 50 })

	// A request in flight across the shutdown: headers and half the body
	// now, the rest once the listener no longer accepts connections.
	body := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}.Encode()
	inflight, err := net.Dial("tcp", pub)
	if err != nil {
		t.Fatal(err)
	}
	defer inflight.Close()
	head := fmt.Sprintf("POST /oauth2/token HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic c3ZjOnN2Yy1zZWNyZXQtMDEyMzQ1Njc4OS1hYmNkZWZnaGlq\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", pub, len(body), body[:len(body)/2])
	if _, err := io.WriteString(inflight, head); err != nil {
		t.Fatal(err)
	}

	sigAt := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz to answer 503", func() bool {
		code, _ := getStatus(t, "http://"+adm+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	notReadyAt := time.Now()
	waitFor(t, "tokens issued while /readyz answers 503", func() bool { return load.count(notReadyAt, http.StatusOK) >= 10 })
	waitFor(t, "the public listener to close", func() bool {
		c, err := net.DialTimeout("tcp", pub, time.Second)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	})
	closedAt := time.Now()
	if _, err := io.WriteString(inflight, body[len(body)/2:]); err != nil {
		t.Fatalf("in-flight request: finishing the body after the listener closed: %v", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(inflight), nil)
	if err != nil {
		t.Fatalf("in-flight request got no response: %v", err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(res.Body).Decode(&tok)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("in-flight request: %d, token %v", res.StatusCode, tok.AccessToken != "")
	}

	if err := p.exitWithin(t, 2*time.Minute); err != nil {
		t.Fatalf("exit: %v (want 0)", err)
	}
	exitAt := time.Now()
	results := load.stop()
	refused := 0
	for i, r := range results {
		switch {
		case r.status == http.StatusOK:
		case r.status == 0 && !r.done.Before(sigAt.Add(delay)):
			// The listener closed after the delay: new requests are
			// refused at the TCP level, as a load balancer expects.
			refused++
		default:
			t.Fatalf("request %d: status %d (error %q) %v after SIGTERM; want 200, or a refused connection after the %v delay",
				i, r.status, r.errCode, r.done.Sub(sigAt), delay)
		}
	}
	t.Logf("%d requests, %d refused after the drain; /readyz 503 %v after SIGTERM, %d tokens issued after that, listener closed after %v, exit 0 after %v",
		len(results), refused, notReadyAt.Sub(sigAt).Round(time.Millisecond), load.count(notReadyAt, http.StatusOK),
		closedAt.Sub(sigAt).Round(time.Millisecond), exitAt.Sub(sigAt).Round(time.Millisecond))
}
