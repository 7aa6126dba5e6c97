package oauth

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// ccToken returns a client credentials access token of "svc".
func (e *env) ccToken(scope string) string {
	e.t.Helper()
	resp, out := e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, "svc", svcSecret)
	at, _ := out["access_token"].(string)
	if resp.StatusCode != http.StatusOK || at == "" {
		e.t.Fatalf("token: %d %v", resp.StatusCode, out)
	}
	return at
}

// TestIntrospectionCallerAuthCannotBeReplacedByAccessToken: fosite
// authenticates an introspection caller with an access_token form
// parameter in preference to HTTP Basic, so a request with made-up Basic
// credentials plus any access token in the body would be answered.
// Bulwark accepts only HTTP Basic client authentication (or an API key).
func TestIntrospectionCallerAuthCannotBeReplacedByAccessToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := e.ccToken("api:read")
	target := e.ccToken("api:write")
	for name, tc := range map[string]struct {
		user, pass string
		form       url.Values
		query      string
	}{
		"case=bogus basic plus access_token in body": {"nobody", "wrong", url.Values{"token": {target}, "access_token": {at}}, ""},
		"case=bogus basic plus access_token in query": {"nobody", "wrong", url.Values{"token": {target}}, "?access_token=" + url.QueryEscape(at)},
		"case=valid basic plus access_token in body":  {"svc", svcSecret, url.Values{"token": {target}, "access_token": {at}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			resp, out := e.postForm(pathIntrospect+tc.query, tc.form, tc.user, tc.pass)
			if out["active"] == true {
				t.Fatalf("introspection answered for a caller that authenticated with an access token: %d %v", resp.StatusCode, out)
			}
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d %v", resp.StatusCode, out)
			}
		})
	}
}

// The same through a multipart body, which fosite parses itself.
func TestIntrospectionMultipartAccessTokenRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := e.ccToken("api:read")
	target := e.ccToken("api:write")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("token", target)
	_ = mw.WriteField("access_token", at)
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, e.url(pathIntrospect), &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth("nobody", "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := readBody(t, resp)
	if resp.StatusCode == http.StatusOK || strings.Contains(got, `"active":true`) {
		t.Fatalf("multipart introspection with an access_token caller: %d %s", resp.StatusCode, got)
	}
}
