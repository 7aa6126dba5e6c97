package main

// Load runs: real HTTP over loopback against the assembled server on
// Postgres, many requests in parallel. They print figures (go test -bench);
// they assert nothing about time.

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

func BenchmarkLoadPostgres(b *testing.B) {
	s := startE2E(b, pgtest.NewDatabase(b), func(c *config) {
		// A load run measures the server, not the rate limiter.
		c.RateLimits, c.ClientRateLimits = nil, nil
	})
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: transport}
	b.Cleanup(transport.CloseIdleConnections)
	post := func(path, form string) (int, error) {
		req, _ := http.NewRequest(http.MethodPost, s.issuer+path, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", e2eSvcSecret)
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_ = res.Body.Close()
		return res.StatusCode, nil
	}
	ccForm := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}.Encode()
	status, out := s.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "svc", e2eSvcSecret)
	if status != 200 {
		b.Fatalf("warm-up token: %d %v", status, out)
	}
	token, _ := out["access_token"].(string)
	inForm := url.Values{"token": {token}}.Encode()

	for _, tc := range []struct{ name, path, form string }{
		{"endpoint=token-client-credentials", "/oauth2/token", ccForm},
		{"endpoint=introspect-jwt", "/oauth2/introspect", inForm},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var failed atomic.Int64
			b.SetParallelism(8) // 16 concurrent callers on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if st, err := post(tc.path, tc.form); err != nil || st != 200 {
						failed.Add(1)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d requests failed", n, b.N)
			}
		})
	}
}
