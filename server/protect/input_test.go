package protect

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStrictInput(t *testing.T) {
	t.Parallel()
	form := StrictInput(InputConfig{MaxBodyBytes: 1024, MaxValueBytes: 64, MaxParams: 5})(echoBody)
	jsonAPI := StrictInput(InputConfig{MaxBodyBytes: 1024, ContentTypes: []string{"application/json"}})(echoBody)
	long := strings.Repeat("a", 65)
	cases := []struct {
		name     string
		h        http.Handler
		method   string
		query    string
		ctype    string
		body     string
		status   int
		wantDesc string
	}{
		{name: "case=ok-form", h: form, method: "POST", ctype: formType, body: "grant_type=client_credentials&scope=a+b", status: 200},
		{name: "case=ok-charset", h: form, method: "POST", ctype: "application/x-www-form-urlencoded; charset=utf-8", body: "a=1", status: 200},
		{name: "case=ok-get-query", h: form, method: "GET", query: "response_type=code&client_id=x", status: 200},
		{name: "case=ok-repeatable-resource", h: form, method: "POST", ctype: formType, body: "resource=a&resource=b", status: 200},
		{name: "case=ok-bodiless-post", h: form, method: "POST", status: 200},
		{name: "case=dup-query", h: form, method: "GET", query: "client_id=a&client_id=b", status: 400, wantDesc: "duplicate parameter: client_id"},
		{name: "case=dup-form", h: form, method: "POST", ctype: formType, body: "scope=a&grant_type=x&scope=secretvalue", status: 400, wantDesc: "duplicate parameter: scope"},
		{name: "case=dup-query-and-form", h: form, method: "POST", query: "code=1", ctype: formType, body: "code=2", status: 400, wantDesc: "duplicate parameter: code"},
		{name: "case=dup-encoded-name", h: form, method: "POST", ctype: formType, body: "state=1&st%61te=2", status: 400, wantDesc: "duplicate parameter: state"},
		{name: "case=dup-empty-values", h: form, method: "POST", ctype: formType, body: "nonce&nonce=", status: 400, wantDesc: "duplicate parameter: nonce"},
		{name: "case=too-many", h: form, method: "POST", ctype: formType, body: "a=1&b=1&c=1&d=1&e=1&f=1", status: 400, wantDesc: "Too many request parameters."},
		{name: "case=value-too-long", h: form, method: "POST", ctype: formType, body: "a=" + long, status: 400, wantDesc: "Request parameter too long."},
		{name: "case=name-too-long", h: form, method: "GET", query: long + "=1", status: 400, wantDesc: "Request parameter too long."},
		{name: "case=bad-escape", h: form, method: "POST", ctype: formType, body: "a=%zz", status: 400, wantDesc: "Malformed request parameters."},
		{name: "case=semicolon", h: form, method: "GET", query: "a=1;b=2", status: 400, wantDesc: "Malformed request parameters."},
		{name: "case=json-on-form-endpoint", h: form, method: "POST", ctype: "application/json", body: `{"a":1}`, status: 400, wantDesc: "Unsupported content type."},
		{name: "case=multipart-on-form-endpoint", h: form, method: "POST", ctype: "multipart/form-data; boundary=x", body: "--x--", status: 400, wantDesc: "Unsupported content type."},
		{name: "case=missing-content-type", h: form, method: "POST", body: "a=1", status: 400, wantDesc: "Unsupported content type."},
		{name: "case=oversized-body", h: form, method: "POST", ctype: formType, body: "a=" + strings.Repeat("b", 1100), status: 413, wantDesc: "Request body too large."},
		{name: "case=json-ok", h: jsonAPI, method: "PUT", ctype: "application/json", body: `{"a":"a","a":"b"}`, status: 200},
		{name: "case=json-form-refused", h: jsonAPI, method: "POST", ctype: formType, body: "a=1", status: 400, wantDesc: "Unsupported content type."},
		{name: "case=json-dup-query", h: jsonAPI, method: "GET", query: "limit=1&limit=2", status: 400, wantDesc: "duplicate parameter: limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			req, err := http.NewRequest(tc.method, srv.URL+"/?"+tc.query, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body == "" {
				req.Body, req.ContentLength = http.NoBody, 0
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 200 {
				if b, _ := io.ReadAll(resp.Body); string(b) != tc.body {
					t.Fatalf("handler saw body %q, want %q", b, tc.body)
				}
				return
			}
			e := decodeOAuthError(t, resp)
			if e.Error != "invalid_request" || e.Description != tc.wantDesc {
				t.Fatalf("error %+v, want invalid_request %q", e, tc.wantDesc)
			}
			if strings.Contains(e.Description, "secretvalue") {
				t.Fatal("a parameter value was echoed")
			}
		})
	}
}

func TestStrictInputChunkedOversize(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(StrictInput(InputConfig{MaxBodyBytes: 100})(echoBody))
	defer srv.Close()
	// An unknown length (chunked) body is cut off while reading.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("a=" + strings.Repeat("x", 500)))
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("POST", srv.URL, pr)
	req.Header.Set("Content-Type", formType)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

func TestParseParamsErrors(t *testing.T) {
	t.Parallel()
	lim := ParamLimits{MaxParams: 3, MaxValueBytes: 8, Repeatable: map[string]bool{"audience": true}}
	cases := []struct {
		raw  string
		want error
		name string
	}{
		{"a=1&a=2", ErrDuplicateParam, "a"},
		{"a=1&b=2&c=3&d=4", ErrTooManyParams, ""},
		{"a=123456789", ErrParamTooLong, "a"},
		{"a=%", ErrMalformedQuery, "a"},
		{"audience=x&audience=y", nil, ""},
		{"&&a=1&&", nil, ""},
	}
	for _, tc := range cases {
		_, err := ParseParams(tc.raw, lim, nil)
		if !errors.Is(err, tc.want) {
			t.Fatalf("case=%q: err %v, want %v", tc.raw, err, tc.want)
		}
		var pe *ParamError
		if tc.want != nil && (!errors.As(err, &pe) || pe.Name != tc.name) {
			t.Fatalf("case=%q: ParamError name %+v, want %q", tc.raw, pe, tc.name)
		}
	}
}

// FuzzParseParams checks ParseParams against net/url: whenever it accepts
// input, it decodes exactly what url.ParseQuery does, and every
// non-repeatable name occurs once; whenever net/url rejects input, so does
// ParseParams.
func FuzzParseParams(f *testing.F) {
	for _, s := range []string{"", "a=1&b=2", "a=1&a=2", "a=%41&%61=b", "x=1;y=2", "a+b=c+d&&=&", "resource=1&resource=2", "a=%zz", "%=1"} {
		f.Add(s)
	}
	lim := ParamLimits{MaxParams: 100, MaxValueBytes: 2048, Repeatable: map[string]bool{"resource": true}}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := ParseParams(raw, lim, nil)
		want, stdErr := url.ParseQuery(raw)
		if stdErr != nil {
			if err == nil {
				t.Fatalf("net/url rejects %q (%v) but ParseParams accepted it", raw, stdErr)
			}
			return
		}
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParamError", err)
			}
			switch {
			case errors.Is(err, ErrDuplicateParam):
				if len(want[pe.Name]) < 2 || lim.Repeatable[pe.Name] {
					t.Fatalf("%q: false duplicate %q", raw, pe.Name)
				}
			case errors.Is(err, ErrTooManyParams), errors.Is(err, ErrParamTooLong):
			case errors.Is(err, errBadBytes):
				if !hasBadBytes(want) {
					t.Fatalf("%q: refused as bad bytes, but every decoded name and value is valid UTF-8 without NUL", raw)
				}
			default:
				t.Fatalf("%q: unexpected error %v", raw, err)
			}
			return
		}
		if len(want) == 0 && len(got) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: ParseParams %v, net/url %v", raw, got, want)
		}
		for name, vs := range got {
			if len(vs) > 1 && !lim.Repeatable[name] {
				t.Fatalf("%q: duplicate %q accepted", raw, name)
			}
		}
	})
}

// hasBadBytes reports whether a decoded name or value holds a NUL byte or
// invalid UTF-8, which the pipeline refuses at the door.
func hasBadBytes(v url.Values) bool {
	bad := func(s string) bool { return !utf8.ValidString(s) || strings.ContainsRune(s, 0) }
	for k, vs := range v {
		if bad(k) {
			return true
		}
		for _, x := range vs {
			if bad(x) {
				return true
			}
		}
	}
	return false
}
