package oauth

// Fuzz targets for the two places where the public endpoints meet hostile
// bytes before anything is authenticated: redirect URI matching (an open
// redirector or a code sent to the wrong host is the classic OAuth
// failure), and the parsing of introspection and token requests.
//
//	go test -run '^$' -fuzz FuzzRedirectURIMatching -fuzztime 30s ./server/oauth/
//	go test -run '^$' -fuzz FuzzIntrospectionInput -fuzztime 30s ./server/oauth/

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/storage"
)

// fixedRedirects is a realistic registration mixing every kind of URI a
// client may hold.
var fixedRedirects = []string{
	"https://good.example/cb",
	"https://good.example/cb?x=1",
	"http://127.0.0.1/cb",
	"http://[::1]:8080/native/cb",
	"http://localhost:3000/cb",
	"com.example.app:/oauth2redirect",
}

// FuzzRedirectURIMatching checks redirectAllowed and
// storage.ValidateRedirectURI on arbitrary registered/presented pairs:
// no panic; a registered URI always matches itself; anything else matches
// only for a native client, over http to the same loopback IP literal, and
// differing from a registered URI in the port and nothing else (RFC 8252
// §7.3, RFC 9700 §4.1.3: exact string matching otherwise).
func FuzzRedirectURIMatching(f *testing.F) {
	seeds := []struct {
		reg, presented string
	}{
		{"https://good.example/cb", "https://good.example/cb"},
		{"https://good.example/cb", "https://good.example/cb@evil"},
		{"https://good.example/cb", "https://good.example/cb@evil.example"},
		{"https://good.example/cb", "https://good.example@evil.example/cb"},
		{"https://good.example/cb", "https://good.example.evil/cb"},
		{"https://good.example/cb", "https://good.example/cb/../x"},
		{"https://good.example/cb", "https://good.example/cb/"},
		{"https://good.example/cb", "https://good.example/cbx"},
		{"https://good.example/cb", "https://GOOD.example/cb"},
		{"https://good.example/cb", "HTTPS://good.example/cb"},
		{"https://good.example/cb", "https://good.example/cb#frag"},
		{"https://good.example/cb", "https://good.example/cb?"},
		{"https://good.example/cb", "https://good.example/cb?x=1"},
		{"https://good.example/cb", "https://good.example:443/cb"},
		{"https://good.example/cb", "https://good.example:8443/cb"},
		{"https://good.example/cb", "https://good.example/%63b"},
		{"https://good.example/cb", "https://good.example/c%62"},
		{"https://good.example/cb", "https://göod.example/cb"},
		{"https://good.example/cb", "https://xn--gd-fka.example/cb"},
		{"https://good.example/cb", "https://good.example/cb\u0000"},
		{"https://good.example/cb", "https://good.example\\@evil.example/cb"},
		{"https://good.example/cb", "//good.example/cb"},
		{"https://good.example/cb", " https://good.example/cb"},
		{"http://127.0.0.1:1/cb", "http://127.0.0.1:2/cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:51234/cb/../cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:51234/%63b"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:51234/cb?"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:51234/cb#x"},
		{"http://127.0.0.1/cb", "HTTP://127.0.0.1:51234/cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:/cb#"},
		{"http://127.0.0.1/cb", "http://user@127.0.0.1:51234/cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:51234@evil.example/cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.2:51234/cb"},
		{"http://127.0.0.1/cb", "http://127.1:51234/cb"},
		{"http://127.0.0.1/cb", "http://0x7f.0.0.1:51234/cb"},
		{"http://127.0.0.1/cb", "http://[::ffff:127.0.0.1]:51234/cb"},
		{"http://127.0.0.1/cb", "https://127.0.0.1:51234/cb"},
		{"http://[::1]/cb", "http://[::1]:51234/cb"},
		{"http://[::1]/cb", "http://[0:0:0:0:0:0:0:1]:51234/cb"},
		{"http://[::1]/cb", "http://[::1%25eth0]:51234/cb"},
		{"http://localhost/cb", "http://localhost:51234/cb"},
		{"http://localhost:3000/cb", "http://localhost:3001/cb"},
		{"http://localhost/cb", "http://127.0.0.1:51234/cb"},
		{"http://127.0.0.1/cb?x=1", "http://127.0.0.1:5/cb?x=2"},
		{"http://127.0.0.1/cb?x=1", "http://127.0.0.1:5/cb?x=1"},
		{"com.example.app:/oauth2redirect", "com.example.app:/oauth2redirect/../x"},
		{"com.example.app:/oauth2redirect", "COM.example.app:/oauth2redirect"},
		{"https://good.example/cb", ""},
		{"", "https://good.example/cb"},
		{"%", "%"},
		{"http://127.0.0.1:99999999999999999999/cb", "http://127.0.0.1:1/cb"},
	}
	for _, s := range seeds {
		f.Add(s.reg, s.presented, false)
		f.Add(s.reg, s.presented, true)
	}
	f.Fuzz(func(t *testing.T, reg, presented string, native bool) {
		appType := storage.AppTypeWeb
		if native {
			appType = storage.AppTypeNative
		}
		for _, raw := range []string{reg, presented} {
			checkValidation(t, raw, native)
		}
		checkMatch(t, &storage.Client{ID: "c", RedirectURIs: []string{reg}, ApplicationType: appType}, presented)
		for _, at := range []string{storage.AppTypeWeb, storage.AppTypeNative, ""} {
			checkMatch(t, &storage.Client{ID: "c", RedirectURIs: fixedRedirects, ApplicationType: at}, presented)
		}
	})
}

// checkMatch asserts the matching properties of redirectAllowed for one
// client and one presented URI.
func checkMatch(t *testing.T, c *storage.Client, presented string) {
	t.Helper()
	allowed := redirectAllowed(c, presented)
	if presented == "" {
		// Left to fosite by design (one registered URI, not OIDC).
		if !allowed {
			t.Fatal("an empty redirect_uri must be left to fosite")
		}
		return
	}
	exact := slices.Contains(c.RedirectURIs, presented)
	if exact && !allowed {
		t.Fatalf("registered URI %q refused", presented)
	}
	if !allowed || exact {
		return
	}
	if !c.IsNative() {
		t.Fatalf("web client (type %q) accepted %q, which matches none of %q byte for byte", c.ApplicationType, presented, c.RedirectURIs)
	}
	for _, reg := range c.RedirectURIs {
		if loopbackPortVariant(reg, presented) {
			return
		}
	}
	t.Fatalf("native client accepted %q, which differs from every registered URI %q by more than the port of a loopback IP literal", presented, c.RedirectURIs)
}

// loopbackPortVariant reports whether presented is reg with at most the
// port changed, both being plain http URIs whose host is the same loopback
// IP literal, byte for byte. It works on the raw strings, not on parsed
// URLs, so an encoding difference the parser would normalise away counts
// as a difference.
func loopbackPortVariant(reg, presented string) bool {
	rs, rh, rrest, ok := splitAuthority(reg)
	if !ok {
		return false
	}
	ps, ph, prest, ok := splitAuthority(presented)
	if !ok {
		return false
	}
	if rs != "http" || ps != "http" || rh != ph || rrest != prest {
		return false
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(rh, "["), "]"))
	return ip != nil && ip.IsLoopback() && !strings.EqualFold(rh, "localhost")
}

// splitAuthority splits "scheme://host[:port]rest" into scheme, host and
// rest (path, query, fragment), dropping the port. It refuses user info.
func splitAuthority(raw string) (scheme, host, rest string, ok bool) {
	scheme, after, found := strings.Cut(raw, "://")
	if !found {
		return "", "", "", false
	}
	end := strings.IndexAny(after, "/?#")
	if end < 0 {
		end = len(after)
	}
	authority, rest := after[:end], after[end:]
	if strings.Contains(authority, "@") {
		return "", "", "", false
	}
	host = authority
	if strings.HasPrefix(authority, "[") {
		i := strings.Index(authority, "]")
		if i < 0 {
			return "", "", "", false
		}
		host = authority[:i+1]
		if tail := authority[i+1:]; tail != "" && !strings.HasPrefix(tail, ":") {
			return "", "", "", false
		}
	} else if i := strings.LastIndex(authority, ":"); i >= 0 {
		host = authority[:i]
	}
	return scheme, host, rest, true
}

// checkValidation asserts what storage.ValidateRedirectURI promises of
// every URI it accepts for registration.
func checkValidation(t *testing.T, raw string, native bool) {
	t.Helper()
	if storage.ValidateRedirectURI(raw, native) != nil {
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("accepted %q, which does not parse: %v", raw, err)
	}
	switch {
	case !u.IsAbs():
		t.Fatalf("accepted relative URI %q", raw)
	case strings.Contains(raw, "#"):
		t.Fatalf("accepted URI with a fragment %q", raw)
	case u.User != nil:
		t.Fatalf("accepted URI with user info %q", raw)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			t.Fatalf("accepted https URI without host %q", raw)
		}
	case "http":
		if !storage.IsLoopbackHost(u.Hostname()) {
			t.Fatalf("accepted http URI to a non-loopback host %q", raw)
		}
	default:
		if !native {
			t.Fatalf("accepted private-use scheme %q for a web client", raw)
		}
		if !strings.Contains(u.Scheme, ".") {
			t.Fatalf("accepted private-use scheme that is not a reverse domain name %q", raw)
		}
	}
}

// fuzzEnv is one provider reused for a whole fuzz run: building it (and
// hashing the client secret) per input would dominate every exec.
type fuzzEnv struct {
	h http.Handler
	// valid is a real access token, so mutations of it are in the corpus
	// and the one input that is rightly active is recognised.
	valid string
}

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	ctx := context.Background()
	hasher := fastHasher(tb)
	log := logrus.New()
	log.SetOutput(io.Discard)
	p, store, _ := newTestProvider(tb, "https://issuer.example", hasher, log, nil)
	r := mux.NewRouter()
	p.Register(r)
	secret, err := hasher.Hash(ctx, []byte(svcSecret))
	if err != nil {
		tb.Fatal(err)
	}
	if err := store.CreateClient(ctx, &storage.Client{
		ID: "svc", Name: "Service", SecretHash: string(secret),
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read"}, Audience: []string{apiAudience},
		TokenEndpointAuthMethod: storage.AuthMethodSecretBasic,
	}); err != nil {
		tb.Fatal(err)
	}
	e := &fuzzEnv{h: r}
	status, body := e.do(pathToken, "grant_type=client_credentials&scope=api%3Aread", authSvc)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); status != http.StatusOK || err != nil || tok.AccessToken == "" {
		tb.Fatalf("issue a token: %d %s", status, body)
	}
	e.valid = tok.AccessToken
	if status, body := e.do(pathIntrospect, url.Values{"token": {e.valid}}.Encode(), authSvc); status != http.StatusOK || !bytes.Contains(body, []byte(`"active":true`)) {
		tb.Fatalf("the issued token must introspect active: %d %s", status, body)
	}
	return e
}

// maxFormBytes is the body limit of the token and introspection endpoints.
const maxFormBytes = 64 << 10

// Caller authentication variants.
const (
	authSvc = iota
	authNone
	authWrongSecret
	authBearer
	authModes
)

// do serves one form POST in process and returns the status and body.
func (e *fuzzEnv) do(path, body string, auth int) (int, []byte) {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	switch auth {
	case authSvc:
		req.SetBasicAuth("svc", svcSecret)
	case authWrongSecret:
		req.SetBasicAuth("svc", "wrong-"+svcSecret)
	case authBearer:
		req.Header.Set("Authorization", "Bearer "+body)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// FuzzIntrospectionInput sends arbitrary tokens and arbitrary form bodies
// to the introspection and token endpoints: never a 5xx, always a JSON
// body, and an authenticated introspection of anything but a live token is
// exactly {"active":false} (RFC 7662 §2.2: nothing else may leak).
func FuzzIntrospectionInput(f *testing.F) {
	e := newFuzzEnv(f)
	v := e.valid
	dot := strings.IndexByte(v, '.')
	last := strings.LastIndexByte(v, '.')
	parts := strings.Split(v, ".")
	flip := func(i int) string {
		b := []byte(v)
		b[i] ^= 0x01
		return string(b)
	}
	tokens := []string{
		"", " ", "x", "null", "{}", "a.b.c", "..", "ory_at_x.y", "ory_rt_x.y", "ory_ac_x.y",
		"eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJub25lIiwia2lkIjoiZnV6ei1raWQtMSJ9.e30.",
		"\x00\xff\xfe", "%zz", "token=x&token=y",
		v, v + " ", " " + v, v + "=", v[:last], v[:last+1], v[dot:], flip(3), flip(dot + 5), flip(len(v) - 2),
		strings.ToUpper(v), parts[1] + "." + parts[0] + "." + parts[2], parts[0] + "." + parts[1] + ".",
		v + "." + parts[2],
	}
	bodies := []string{
		"", "token=", "token", "=", "&&&", "token=%", "token=%zz", "token=a&token=b",
		"token=x&token_type_hint=refresh_token", "token=x&token_type_hint=%00", "token=x&scope=api%3Aread",
		"grant_type=client_credentials", "grant_type=client_credentials&scope=admin",
		"grant_type=client_credentials&audience=https%3A%2F%2Fevil", "grant_type=refresh_token&refresh_token=x",
		"grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Fa", "grant_type=password&username=a&password=b",
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=x&subject_token_type=x",
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c",
		"client_id=svc&client_secret=x&grant_type=client_credentials", "client_assertion_type=x&client_assertion=a.b.c",
		"grant_type=client_credentials;scope=x", "\x00", strings.Repeat("a=b&", 200),
	}
	// Oversized bodies are checked here rather than seeded: the fuzzer
	// would spend its time minimising mutants of 64 KiB inputs.
	for _, path := range []string{pathIntrospect, pathToken} {
		big := url.Values{"token": {strings.Repeat("A", maxFormBytes)}, "grant_type": {"client_credentials"}}.Encode()
		if status, out := e.do(path, big, authSvc); status != http.StatusBadRequest || !json.Valid(out) {
			f.Fatalf("%s with a body over 64 KiB answered %d %s, want 400 JSON", path, status, out)
		}
	}
	for i, tok := range tokens {
		f.Add(tok, bodies[i%len(bodies)], uint8(i))
	}
	for i, b := range bodies {
		f.Add(tokens[i%len(tokens)], b, uint8(i))
	}
	f.Fuzz(func(t *testing.T, token, body string, mode uint8) {
		auth := int(mode) % authModes
		hint := []string{"", "access_token", "refresh_token", "authorization_code"}[int(mode/authModes)%4]
		form := url.Values{"token": {token}}
		if hint != "" {
			form.Set("token_type_hint", hint)
		}
		status, out := e.do(pathIntrospect, form.Encode(), auth)
		assertJSON(t, "introspect(token)", status, out)
		if len(form.Encode()) > maxFormBytes {
			// The endpoint reads at most 64 KiB of body.
			if status != http.StatusBadRequest {
				t.Fatalf("an oversized introspection body answered %d %s, want 400", status, out)
			}
		} else if auth == authSvc {
			if token == e.valid {
				if !bytes.Contains(out, []byte(`"active":true`)) {
					t.Fatalf("the live token introspects %d %s", status, out)
				}
			} else if status != http.StatusOK || !isExactlyInactive(out) {
				t.Fatalf("introspection of a token that was never issued answered %d %s, want 200 {\"active\":false}", status, out)
			}
		} else if status != http.StatusUnauthorized {
			t.Fatalf("introspection without valid caller credentials answered %d %s, want 401", status, out)
		}

		// The raw body, to the introspection endpoint.
		status, out = e.do(pathIntrospect, body, auth)
		assertJSON(t, "introspect(body)", status, out)
		if status == http.StatusOK && auth == authSvc {
			if pf, err := url.ParseQuery(body); err == nil && pf.Get("token") != e.valid && !isExactlyInactive(out) {
				t.Fatalf("introspection of body %q answered %s, want exactly {\"active\":false}", body, out)
			}
		}
		if status == http.StatusOK && auth != authSvc {
			t.Fatalf("introspection without valid caller credentials answered 200 %s", out)
		}

		// The raw body, and the token as a refresh token, to the token endpoint.
		status, out = e.do(pathToken, body, auth)
		assertJSON(t, "token(body)", status, out)
		status, out = e.do(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}.Encode(), auth)
		assertJSON(t, "token(refresh_token)", status, out)
		if status == http.StatusOK {
			t.Fatalf("refresh with a token that was never issued succeeded: %s", out)
		}
	})
}

func assertJSON(t *testing.T, what string, status int, body []byte) {
	t.Helper()
	if status >= 500 {
		t.Fatalf("%s: status %d: %s", what, status, body)
	}
	if !json.Valid(body) {
		t.Fatalf("%s: status %d, body is not JSON: %q", what, status, body)
	}
}

func isExactlyInactive(body []byte) bool {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return false
	}
	return len(m) == 1 && m["active"] == false
}
