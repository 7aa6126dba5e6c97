package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// op is one measured operation of a worker: it returns how many HTTP
// requests it made and the first failure.
type op func(ctx context.Context) (requests int, err error)

// setupFunc prepares worker i's state outside the clock and returns its op.
type setupFunc func(ctx context.Context, e *env, i int) (op, error)

var scenarios = map[string]setupFunc{
	ClientCredentials: setupClientCredentials,
	IntrospectJWT:     setupIntrospectJWT,
	IntrospectAPIKey:  setupIntrospectAPIKey,
	JWKS:              setupGet("/.well-known/jwks.json"),
	Discovery:         setupGet("/.well-known/openid-configuration"),
	AuthCodeFlow:      setupAuthCodeFlow,
	Refresh:           setupRefresh,
	TokenExchange:     setupTokenExchange,
	ForwardAuthJWT:    setupForwardAuthJWT,
	ForwardAuthAPIKey: setupForwardAuth(func(e *env) (string, string) { return "X-API-Key", e.cliKey }),
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

type introspection struct {
	Active bool `json:"active"`
}

func (e *env) client() *http.Client {
	return &http.Client{Transport: e.transport, Timeout: e.opts.Timeout}
}

// clientCredentials asks for a token as the bench service (RFC 6749 §4.4).
func (e *env) clientCredentials(ctx context.Context, c *http.Client) (string, error) {
	var tr tokenResponse
	req := formRequest(ctx, e.opts.PublicURL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}, e.svcID, e.svcSecret, "")
	if err := call(c, req, http.StatusOK, &tr); err != nil {
		return "", err
	}
	if tr.AccessToken == "" {
		return "", fmt.Errorf("%w: no access token", errUnexpected)
	}
	return tr.AccessToken, nil
}

func setupClientCredentials(_ context.Context, e *env, _ int) (op, error) {
	c := e.client()
	return func(ctx context.Context) (int, error) {
		_, err := e.clientCredentials(ctx, c)
		return 1, err
	}, nil
}

// introspect asks about token and requires active (RFC 7662 §2).
func introspect(ctx context.Context, c *http.Client, req *http.Request) error {
	var in introspection
	if err := call(c, req, http.StatusOK, &in); err != nil {
		return err
	}
	if !in.Active {
		return fmt.Errorf("%w: token introspected inactive", errUnexpected)
	}
	return nil
}

// setupIntrospectJWT: a resource server (the service client, HTTP Basic)
// introspects a JWT access token issued to it.
func setupIntrospectJWT(ctx context.Context, e *env, _ int) (op, error) {
	c := e.client()
	tok, err := e.clientCredentials(ctx, c)
	if err != nil {
		return nil, err
	}
	form := url.Values{"token": {tok}}
	return func(ctx context.Context) (int, error) {
		return 1, introspect(ctx, c, formRequest(ctx, e.opts.PublicURL+"/oauth2/introspect", form, e.svcID, e.svcSecret, ""))
	}, nil
}

// setupIntrospectAPIKey: a resource server authenticating with its own API
// key introspects another API key — two cached verifications per request.
func setupIntrospectAPIKey(_ context.Context, e *env, _ int) (op, error) {
	c := e.client()
	form := url.Values{"token": {e.cliKey}}
	return func(ctx context.Context) (int, error) {
		return 1, introspect(ctx, c, formRequest(ctx, e.opts.PublicURL+"/oauth2/introspect", form, "", "", e.rsKey))
	}, nil
}

func setupGet(path string) setupFunc {
	return func(_ context.Context, e *env, _ int) (op, error) {
		c := e.client()
		return func(ctx context.Context) (int, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.opts.PublicURL+path, nil)
			if err != nil {
				return 0, err
			}
			return 1, call(c, req, http.StatusOK, nil)
		}, nil
	}
}

// setupForwardAuthJWT: a gateway checks a JWT access token of the svc
// client (verified from the key ring, no database).
func setupForwardAuthJWT(ctx context.Context, e *env, i int) (op, error) {
	tok, err := e.clientCredentials(ctx, e.client())
	if err != nil {
		return nil, err
	}
	return setupForwardAuth(func(*env) (string, string) { return "Authorization", "Bearer " + tok })(ctx, e, i)
}

// setupForwardAuth: a gateway's auth subrequest (nginx auth_request) with
// the credential header credential names; every check must pass.
func setupForwardAuth(credential func(*env) (header, value string)) setupFunc {
	return func(_ context.Context, e *env, _ int) (op, error) {
		c := e.client()
		name, value := credential(e)
		return func(ctx context.Context) (int, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.opts.ForwardAuthURL, nil)
			if err != nil {
				return 0, err
			}
			req.Header.Set(name, value)
			req.Header.Set("X-Forwarded-Method", http.MethodGet)
			req.Header.Set("X-Forwarded-Host", "bench.invalid")
			req.Header.Set("X-Forwarded-Uri", e.opts.ForwardAuthURI)
			return 1, call(c, req, http.StatusOK, nil)
		}, nil
	}
}

// exchangeCode redeems a code with its PKCE verifier (RFC 6749 §4.1.3,
// RFC 7636 §4.5).
func (e *env) exchangeCode(ctx context.Context, c *http.Client, code, verifier string) (tokenResponse, error) {
	var tr tokenResponse
	req := formRequest(ctx, e.opts.PublicURL+"/oauth2/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier},
	}, e.webID, e.webSecret, "")
	if err := call(c, req, http.StatusOK, &tr); err != nil {
		return tr, err
	}
	if tr.AccessToken == "" || tr.RefreshToken == "" || tr.IDToken == "" {
		return tr, fmt.Errorf("%w: code exchange lacks a token", errUnexpected)
	}
	return tr, nil
}

// refresh rotates a refresh token (RFC 6749 §6) and returns the new one.
func (e *env) refresh(ctx context.Context, c *http.Client, rt string) (string, error) {
	var tr tokenResponse
	req := formRequest(ctx, e.opts.PublicURL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, e.webID, e.webSecret, "")
	if err := call(c, req, http.StatusOK, &tr); err != nil {
		return "", err
	}
	if tr.AccessToken == "" || tr.RefreshToken == "" {
		return "", fmt.Errorf("%w: refresh lacks a token", errUnexpected)
	}
	return tr.RefreshToken, nil
}

// setupAuthCodeFlow: one operation is a whole flow for a signed-in user
// with remembered consent — authorize, code exchange with PKCE, refresh.
func setupAuthCodeFlow(_ context.Context, e *env, _ int) (op, error) {
	b, err := e.browser()
	if err != nil {
		return nil, err
	}
	c := e.client()
	return func(ctx context.Context) (int, error) {
		code, verifier, err := authorize(ctx, e, b)
		if err != nil {
			return 1, err
		}
		tr, err := e.exchangeCode(ctx, c, code, verifier)
		if err != nil {
			return 2, err
		}
		_, err = e.refresh(ctx, c, tr.RefreshToken)
		return 3, err
	}, nil
}

// setupRefresh: each worker holds its own token family and rotates it.
func setupRefresh(ctx context.Context, e *env, _ int) (op, error) {
	b, err := e.browser()
	if err != nil {
		return nil, err
	}
	c := e.client()
	code, verifier, err := authorize(ctx, e, b)
	if err != nil {
		return nil, err
	}
	tr, err := e.exchangeCode(ctx, c, code, verifier)
	if err != nil {
		return nil, err
	}
	rt := tr.RefreshToken
	return func(ctx context.Context) (int, error) {
		next, err := e.refresh(ctx, c, rt)
		if err == nil {
			rt = next
		}
		return 1, err
	}, nil
}

// setupTokenExchange: the service's API key is exchanged for a JWT access
// token (RFC 8693 §2.1, with Bulwark's API-key token type).
func setupTokenExchange(_ context.Context, e *env, _ int) (op, error) {
	c := e.client()
	form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {e.cliKey}, "subject_token_type": {tokenTypeAPIKey}, "scope": {"api:read"}}
	return func(ctx context.Context) (int, error) {
		var tr tokenResponse
		if err := call(c, formRequest(ctx, e.opts.PublicURL+"/oauth2/token", form, "", "", ""), http.StatusOK, &tr); err != nil {
			return 1, err
		}
		if tr.AccessToken == "" {
			return 1, fmt.Errorf("%w: no access token", errUnexpected)
		}
		return 1, nil
	}, nil
}
