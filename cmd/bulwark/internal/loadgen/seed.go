package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// redirectURI is registered for the bench's web client. It is never
// contacted: the tool reads the code from the Location header.
const redirectURI = "http://127.0.0.1:9/bench/callback"

const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange" // #nosec G101 -- an RFC 8693 grant type URI, not a credential
	tokenTypeAPIKey    = "urn:bulwark:params:oauth:token-type:api-key"     // #nosec G101 -- a token type URI, not a credential
)

// env is a run's seeded identities and shared HTTP plumbing.
type env struct {
	opts      Options
	transport *http.Transport
	api       *http.Client

	runID               string
	svcID, svcSecret    string
	webID, webSecret    string
	userID              string
	username, password  string
	rsKeyID, rsKey      string // a resource server's key (introspect scope)
	clientKeyID, cliKey string // a key owned by the svc client (exchanged, introspected)
	session             []*http.Cookie
	sessionURL          *url.URL
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// seed creates the run's clients, user and API keys through the admin API
// and signs the user in once, remembering consent for the web client.
// Every name carries a random run id, so runs never collide.
func (e *env) seed(ctx context.Context) error {
	e.runID = randomHex(4)
	var svc, web struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := e.adminJSON(ctx, http.MethodPost, "/clients", map[string]any{
		"client_name": "bench service " + e.runID, "grant_types": []string{"client_credentials", grantTokenExchange},
		"scope": "api:read", "token_endpoint_auth_method": "client_secret_basic",
	}, http.StatusCreated, &svc); err != nil {
		return err
	}
	e.svcID, e.svcSecret = svc.ClientID, svc.ClientSecret
	webSpec := map[string]any{
		"client_name": "bench web " + e.runID, "grant_types": []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}, "redirect_uris": []string{redirectURI},
		"scope": "openid offline_access", "token_endpoint_auth_method": "client_secret_basic",
	}
	if e.opts.WebIDTokenAlg != "" {
		// The flows' ID tokens in the algorithm the client registers
		// (OpenID Connect Dynamic Client Registration 1.0 §2).
		webSpec["id_token_signed_response_alg"] = e.opts.WebIDTokenAlg
	}
	if err := e.adminJSON(ctx, http.MethodPost, "/clients", webSpec, http.StatusCreated, &web); err != nil {
		return err
	}
	e.webID, e.webSecret = web.ClientID, web.ClientSecret
	if e.svcSecret == "" || e.webSecret == "" {
		return fmt.Errorf("the admin API returned no client secret: %w", errUnexpected)
	}

	e.username, e.password = "bench-"+e.runID, "bench-pw-"+randomHex(16)
	var user struct {
		ID string `json:"id"`
	}
	if err := e.adminJSON(ctx, http.MethodPost, "/users", map[string]any{
		"username": e.username, "password": e.password, "email": e.username + "@bench.invalid",
	}, http.StatusCreated, &user); err != nil {
		return err
	}
	e.userID = user.ID

	var key struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	if err := e.adminJSON(ctx, http.MethodPost, "/apikeys", map[string]any{
		"name": "bench resource server " + e.runID, "owner_type": "service", "owner_id": "bench-" + e.runID, "scopes": []string{"introspect"},
	}, http.StatusCreated, &key); err != nil {
		return err
	}
	e.rsKeyID, e.rsKey = key.ID, key.Token
	if err := e.adminJSON(ctx, http.MethodPost, "/apikeys", map[string]any{
		"name": "bench client key " + e.runID, "owner_type": "client", "owner_id": e.svcID, "scopes": []string{"introspect"},
	}, http.StatusCreated, &key); err != nil {
		return err
	}
	e.clientKeyID, e.cliKey = key.ID, key.Token
	if e.rsKey == "" || e.cliKey == "" {
		return fmt.Errorf("the admin API returned no API key: %w", errUnexpected)
	}
	return e.signIn(ctx)
}

// cleanup removes what seed created, best effort: deleting the clients
// revokes their tokens; API keys are revoked; the user (which the admin
// API cannot delete) is disabled.
func (e *env) cleanup(ctx context.Context, w io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	steps := []struct{ method, path, id string }{
		{http.MethodPost, "/apikeys/%s/revoke", e.rsKeyID},
		{http.MethodPost, "/apikeys/%s/revoke", e.clientKeyID},
		{http.MethodDelete, "/clients/%s", e.svcID},
		{http.MethodDelete, "/clients/%s", e.webID},
		{http.MethodPost, "/users/%s/disable", e.userID},
	}
	for _, s := range steps {
		if s.id == "" { // seeding stopped before creating it
			continue
		}
		s.path = fmt.Sprintf(s.path, url.PathEscape(s.id))
		want := http.StatusOK
		if s.method == http.MethodDelete {
			want = http.StatusNoContent
		}
		if err := e.adminJSON(ctx, s.method, s.path, nil, want, nil); err != nil {
			fmt.Fprintf(w, "cleanup: %v\n", err)
		}
	}
}
