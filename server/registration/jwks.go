package registration

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/server/egress"
)

// DefaultJWKSCacheTTL is how long a fetched client key set is reused.
// fosite refetches at once when an assertion names a key the cached set
// lacks, so a client's key rotation needs no wait.
const DefaultJWKSCacheTTL = 10 * time.Minute

// JWKSFetcher is fosite's JWKS fetcher for clients registered with a
// jwks_uri, on eg's HTTP client: the dial-time address check after DNS,
// no proxy, no redirects and eg's timeout. Bodies are capped at maxBytes
// (the JSON decoder would otherwise read whatever it is sent) and nothing
// is retried (a retry would multiply a slow client's cost to us).
func JWKSFetcher(eg *egress.Client, maxBytes int64, ttl time.Duration) fosite.JWKSFetcherStrategy {
	if maxBytes <= 0 {
		maxBytes = egress.DefaultMaxBytes
	}
	if ttl <= 0 {
		ttl = DefaultJWKSCacheTTL
	}
	hc := *eg.HTTPClient()
	hc.Transport = cappedTransport{next: hc.Transport, max: maxBytes}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &hc
	rc.RetryMax = 0
	rc.Logger = nil
	return fosite.NewDefaultJWKSFetcherStrategy(
		fosite.JWKSFetcherWithHTTPClient(rc),
		fosite.JKWKSFetcherWithDefaultTTL(ttl),
	)
}

// cappedTransport fails a response body's read past max bytes.
type cappedTransport struct {
	next http.RoundTripper
	max  int64
}

func (t cappedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w: Content-Length %d", egress.ErrTooLarge, resp.ContentLength)
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.rc.Read(one[:]); n > 0 {
			return 0, egress.ErrTooLarge
		} else if err != nil {
			return 0, err
		}
		return 0, nil
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }
