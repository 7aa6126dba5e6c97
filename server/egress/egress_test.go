package egress

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestIsPublic(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"2606:4700:4700::1111", true},
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"fc00::1", false},
		{"fd00:ec2::254", false},
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"64:ff9b::7f00:1", false},
		{"2002:7f00:1::", false},
		{"192.0.2.1", false},
	}
	for _, c := range cases {
		t.Run("addr="+c.addr, func(t *testing.T) {
			t.Parallel()
			if got := IsPublic(netip.MustParseAddr(c.addr)); got != c.public {
				t.Fatalf("IsPublic(%s) = %v, want %v", c.addr, got, c.public)
			}
		})
	}
}

// TestFetchRefusesTheServersOwnNetwork: every spelling of a loopback or
// metadata address is refused before a byte is sent, by the check at
// registration and by the dialer.
func TestFetchRefusesTheServersOwnNetwork(t *testing.T) {
	t.Parallel()
	hit := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hit <- struct{}{}
		_, _ = w.Write([]byte("secret"))
	}))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	c := New(Options{AllowHTTP: true, Timeout: 10 * time.Second})
	for _, u := range []string{
		srv.URL,
		"http://localhost" + port,
		"http://[::ffff:127.0.0.1]" + port,
		"http://2130706433" + port,
		"http://0x7f000001" + port,
		"http://0x7f.0.0.1" + port,
		"http://017700000001" + port,
		"http://127.1" + port,
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]" + port,
		"http://0.0.0.0" + port,
	} {
		t.Run("url="+u, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := c.Fetch(ctx, u); err == nil {
				t.Fatalf("Fetch(%s) succeeded", u)
			}
			if err := c.CheckURL(ctx, u); err == nil {
				t.Fatalf("CheckURL(%s) accepted", u)
			}
		})
	}
	select {
	case <-hit:
		t.Fatal("a refused URL reached the server")
	default:
	}
	// A literal loopback address is refused as forbidden, not as a mere
	// network failure.
	if _, err := c.Fetch(context.Background(), srv.URL); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("Fetch(loopback) = %v, want ErrForbiddenAddress", err)
	}
}

func TestFetchRules(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"keys":[]}`)) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(make([]byte, 2048)) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	release := make(chan struct{})
	mux.HandleFunc("/hang", func(http.ResponseWriter, *http.Request) { <-release })
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { close(release); srv.Close() })
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	ctx := context.Background()

	allowed := New(Options{Allowed: loopback, AllowHTTP: true, MaxBytes: 1024, Timeout: 2 * time.Second})
	if body, err := allowed.Fetch(ctx, srv.URL+"/ok"); err != nil || string(body) != `{"keys":[]}` {
		t.Fatalf("allowed network: %q, %v", body, err)
	}
	if err := allowed.CheckURL(ctx, srv.URL+"/ok"); err != nil {
		t.Fatalf("CheckURL on an allowed network: %v", err)
	}
	if _, err := allowed.Fetch(ctx, srv.URL+"/big"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized body: %v, want ErrTooLarge", err)
	}
	if _, err := allowed.Fetch(ctx, srv.URL+"/redirect"); err == nil || !strings.Contains(err.Error(), "status 302") {
		t.Fatalf("redirect followed or misreported: %v", err)
	}
	if _, err := allowed.Fetch(ctx, srv.URL+"/hang"); err == nil {
		t.Fatal("a server that never answers did not time out")
	}

	httpsOnly := New(Options{Allowed: loopback})
	for _, u := range []string{srv.URL + "/ok", "ftp://example.com/x", "https://user:pw@example.com/", "/relative"} {
		if _, err := httpsOnly.Fetch(ctx, u); err == nil {
			t.Fatalf("Fetch(%s) succeeded", u)
		}
	}
}
