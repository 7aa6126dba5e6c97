package registration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"

	"github.com/bulwark-auth/bulwark/server/egress"
)

func keySetJSON(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJWKSFetcherUsesEgress: fosite's fetcher reaches a client's jwks_uri
// only under the egress rules: a loopback server is refused unless the
// operator allowed its network, bodies beyond the cap fail, nothing is
// retried.
func TestJWKSFetcherUsesEgress(t *testing.T) {
	t.Parallel()
	set := keySetJSON(t)
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write(set)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 4096) + `]}`))
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx := context.Background()

	public := JWKSFetcher(egress.New(egress.Options{AllowHTTP: true, Timeout: 5 * time.Second}), 1024, time.Minute)
	if _, err := public.Resolve(ctx, srv.URL+"/jwks", true); err == nil {
		t.Fatal("the default egress rules fetched a loopback jwks_uri")
	}
	if hits.Load() != 0 {
		t.Fatal("a refused fetch reached the server")
	}

	allowed := JWKSFetcher(egress.New(egress.Options{AllowHTTP: true, Timeout: 5 * time.Second,
		Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}), 1024, time.Minute)
	ks, err := allowed.Resolve(ctx, srv.URL+"/jwks", true)
	if err != nil || len(ks.Key("k1")) != 1 {
		t.Fatalf("allowed fetch: %v %v", ks, err)
	}
	before := hits.Load()
	if _, err := allowed.Resolve(ctx, srv.URL+"/big", true); err == nil {
		t.Fatal("a key set beyond the size cap was accepted")
	}
	if _, err := allowed.Resolve(ctx, srv.URL+"/fail", true); err == nil {
		t.Fatal("a failing jwks_uri gave keys")
	}
	if got := hits.Load() - before; got != 2 {
		t.Fatalf("%d requests for two fetches: the fetcher retried", got)
	}
}

func TestCappedBody(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// No Content-Length: streamed, so only the body cap can stop it.
		f, _ := w.(http.Flusher)
		for range 8 {
			_, _ = w.Write([]byte(strings.Repeat("x", 100)))
			f.Flush()
		}
	}))
	t.Cleanup(srv.Close)
	c := &http.Client{Transport: cappedTransport{next: http.DefaultTransport, max: 300}}
	res, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 10000)
	total := 0
	for {
		n, err := res.Body.Read(buf)
		total += n
		if err != nil {
			if !errors.Is(err, egress.ErrTooLarge) {
				t.Fatalf("read ended with %v after %d bytes, want ErrTooLarge", err, total)
			}
			break
		}
	}
	if total > 300 {
		t.Fatalf("read %d bytes past a 300-byte cap", total)
	}
}

func TestNumericHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"2130706433": true, "0x7f000001": true, "0X7F000001": true, "0x7f.0.0.1": true, "127.1": true, "017700000001": true,
		"1.2.3.4.5": true, "example.com": false, "127.0.0.1": false, "::1": false, "a.0x1": true, "example.com.": false,
		"api.example": false, "10": true, "0xg1": false,
	} {
		if got := numericHost(host); got != want {
			t.Errorf("numericHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestDecodeRefusals(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		``, `null`, `[]`, `"x"`, `{"a":1}{}`, `{"scope":"a","scope":"b"}`, `{"skip_consent":false}`,
		`{"client_id":"x"}`, `{"client_secret":"x"}`, `{"redirect_uris":"x"}`, `{"jwks":{"keys":"x"}}`, `{`,
	} {
		if _, err := decode([]byte(body), false); err == nil {
			t.Errorf("decode(%s) accepted", body)
		}
	}
	req, err := decode([]byte(`{"client_id":"me","client_secret":"s","registration_access_token":"x","client_id_issued_at":1,"unknown_field":{"deep":[1]},"scope":"openid"}`), true)
	if err != nil {
		t.Fatalf("update body: %v", err)
	}
	if req.spec.ID != "me" || req.clientSecret == nil || *req.clientSecret != "s" || len(req.spec.Scopes) != 1 {
		t.Fatalf("decoded %+v", req.spec)
	}
}
