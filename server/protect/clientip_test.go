package protect

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestIPResolver(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"case=no-proxies-ignores-xff", nil, "203.0.113.9:5555", []string{"198.51.100.1"}, "203.0.113.9"},
		{"case=untrusted-peer-ignores-xff", trusted, "203.0.113.9:5555", []string{"198.51.100.1"}, "203.0.113.9"},
		{"case=trusted-peer-honours-xff", trusted, "10.1.2.3:443", []string{"198.51.100.1"}, "198.51.100.1"},
		{"case=rightmost-untrusted-wins", trusted, "10.1.2.3:443", []string{"6.6.6.6, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"case=multiple-header-lines", trusted, "10.1.2.3:443", []string{"6.6.6.6", "198.51.100.7, 10.0.0.1"}, "198.51.100.7"},
		{"case=all-trusted-leftmost", trusted, "10.1.2.3:443", []string{"10.0.0.5, 10.0.0.6"}, "10.0.0.5"},
		{"case=trusted-no-header", trusted, "10.1.2.3:443", nil, "10.1.2.3"},
		{"case=garbage-hop-stops-at-proxy", trusted, "10.1.2.3:443", []string{"1.1.1.1, not-an-ip"}, "10.1.2.3"},
		{"case=ipv6-peer", trusted, "[fd00::1]:443", []string{"2001:db8::5"}, "2001:db8::5"},
		{"case=ipv4-mapped-unmapped", nil, "[::ffff:192.0.2.1]:80", nil, "192.0.2.1"},
		{"case=xff-with-port", trusted, "10.1.2.3:443", []string{"198.51.100.1:1234"}, "198.51.100.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := NewIPResolver(tc.trusted).IP(r)
			if got.String() != tc.want {
				t.Fatalf("IP = %s, want %s", got, tc.want)
			}
		})
	}
}
