package protect

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHeadersByKind(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	cases := []struct {
		name    string
		h       http.Handler
		tls     bool
		csp     string
		noStore bool
	}{
		{"case=page-plain", Headers(Page)(ok), false, CSPPage, false},
		{"case=page-tls-form", Headers(Page)(NoStore(ok)), true, CSPPage, true},
		{"case=api-tls", Headers(API)(ok), true, CSPAPI, false},
		{"case=api-token-endpoint", Chain(Headers(API), NoStore)(ok), false, CSPAPI, true},
		{"case=static-tls", Headers(Static)(ok), true, CSPStatic, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var srv *httptest.Server
			if tc.tls {
				srv = httptest.NewTLSServer(tc.h)
			} else {
				srv = httptest.NewServer(tc.h)
			}
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			h := resp.Header
			want := map[string]string{
				"Content-Security-Policy": tc.csp,
				"X-Frame-Options":         "DENY",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"Server":                  "",
			}
			if tc.tls {
				want["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
			} else {
				want["Strict-Transport-Security"] = ""
			}
			if tc.noStore {
				want["Cache-Control"], want["Pragma"] = "no-store", "no-cache"
			} else {
				want["Cache-Control"], want["Pragma"] = "", ""
			}
			for k, v := range want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
