package loadgen

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

var hiddenField = regexp.MustCompile(`name="(csrf_token|return_to)" value="([^"]*)"`)

// browser is one user agent: its own cookie jar, redirects left to the
// caller so every hop is visible and the code is read from Location.
func (e *env) browser() (*http.Client, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	if e.session != nil {
		jar.SetCookies(e.sessionURL, e.session)
	}
	return &http.Client{
		Transport:     e.transport,
		Jar:           jar,
		Timeout:       e.opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// pkce returns a fresh RFC 7636 verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = randomHex(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizeURL is an authorization request of the bench's web client
// (RFC 6749 §4.1.1 with RFC 7636 PKCE).
func (e *env) authorizeURL(challenge string) string {
	return e.opts.PublicURL + "/oauth2/auth?" + url.Values{
		"response_type": {"code"}, "client_id": {e.webID}, "redirect_uri": {redirectURI},
		"scope": {"openid offline_access"}, "state": {"bench-" + randomHex(8)}, "nonce": {randomHex(8)},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}.Encode()
}

// signIn logs the bench user in once and approves the web client's
// scopes, so that every later authorization is "logged in, consent
// remembered". Workers share the resulting session cookie: the flows
// measure the authorization server, not Argon2id per flow (that is the
// login page's deliberate cost, measured by BenchmarkCompareUncached).
func (e *env) signIn(ctx context.Context) error {
	c, err := e.browser()
	if err != nil {
		return err
	}
	_, challenge := pkce()
	next := e.authorizeURL(challenge)
	method, form := http.MethodGet, url.Values(nil)
	for range 8 {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, next, body)
		if err != nil {
			return err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		res, err := c.Do(req)
		if err != nil {
			return err
		}
		page, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		_ = res.Body.Close()
		if err != nil {
			return err
		}
		if loc := res.Header.Get("Location"); res.StatusCode >= 300 && res.StatusCode < 400 && loc != "" {
			u, err := res.Request.URL.Parse(loc)
			if err != nil {
				return err
			}
			if strings.HasPrefix(u.String(), redirectURI) {
				if u.Query().Get("code") == "" {
					return fmt.Errorf("sign-in ended without a code (error %q)", u.Query().Get("error"))
				}
				e.sessionURL, _ = url.Parse(e.opts.PublicURL)
				e.session = c.Jar.Cookies(e.sessionURL)
				return nil
			}
			next, method, form = u.String(), http.MethodGet, nil
			continue
		}
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("sign-in at %s: %w", res.Request.URL.Path, &statusError{res.StatusCode})
		}
		s := string(page)
		form = url.Values{}
		for _, m := range hiddenField.FindAllStringSubmatch(s, -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		method = http.MethodPost
		switch {
		case strings.Contains(s, `action="/login"`):
			form.Set("username", e.username)
			form.Set("password", e.password)
			next = e.opts.PublicURL + "/login"
		case strings.Contains(s, `action="/consent"`):
			form.Set("decision", "approve")
			next = e.opts.PublicURL + "/consent"
		default:
			return errors.New("sign-in: a page that is neither login nor consent")
		}
	}
	return errors.New("sign-in did not reach the redirect URI")
}

// authorize runs one authorization request with the shared session and
// remembered consent: one 302/303 straight to the redirect URI.
func authorize(ctx context.Context, e *env, c *http.Client) (code, verifier string, err error) {
	verifier, challenge := pkce()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.authorizeURL(challenge), nil)
	if err != nil {
		return "", "", err
	}
	res, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusFound && res.StatusCode != http.StatusSeeOther {
		return "", "", &statusError{res.StatusCode}
	}
	u, err := url.Parse(res.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(u.String(), redirectURI) || u.Query().Get("code") == "" {
		// Redirected to login or consent: the session or consent was lost.
		return "", "", fmt.Errorf("%w: authorization did not return a code", errUnexpected)
	}
	return u.Query().Get("code"), verifier, nil
}
