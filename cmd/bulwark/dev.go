package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/seed"
	"github.com/ory/fosite"
)

// devBootstrap gives a --dev server without a seed file something to try:
// a demo confidential client and a demo user with fresh random secrets, and
// prints how to use them. Nothing here runs outside --dev.
func devBootstrap(ctx context.Context, cfg config, store storage.Store, hasher fosite.Hasher, out io.Writer) error {
	if cfg.SeedFile != "" {
		return nil
	}
	clientSecret, password := randomToken(24), randomToken(12)
	redirect := "http://127.0.0.1:8080/callback"
	doc := &seed.File{
		Clients: []seed.Client{{
			ClientSecret: clientSecret,
			ClientSpec: storage.ClientSpec{
				ID:            "demo",
				Name:          "Demo client",
				RedirectURIs:  []string{redirect},
				GrantTypes:    []string{"authorization_code", "refresh_token", "client_credentials"},
				ResponseTypes: []string{"code"},
				Scopes:        []string{"openid", "profile", "email", "offline_access", "api:read"},
			},
		}},
		Users: []seed.User{{Username: "demo", Password: password, Email: "demo@example.com", AdminScopes: apikeys.AllScopes}},
	}
	if _, err := (&seed.Applier{Store: store, Hasher: hasher}).Apply(ctx, doc); err != nil {
		return fmt.Errorf("dev bootstrap: %w", err)
	}
	q := url.Values{
		"client_id":             {"demo"},
		"response_type":         {"code"},
		"redirect_uri":          {redirect},
		"scope":                 {"openid profile offline_access"},
		"state":                 {randomToken(12)},
		"nonce":                 {randomToken(12)},
		"code_challenge":        {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
		"code_challenge_method": {"S256"},
	}
	_, err := fmt.Fprintf(out, `
================ Bulwark --dev =================
Nothing persists: the store lives in this process.

Demo client:  demo / %s
Demo user:    demo / %s

Get an access token (client credentials):
  curl -s -u 'demo:%s' -d grant_type=client_credentials -d scope=api:read %s/oauth2/token

Start a login in a browser (PKCE verifier: dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk):
  %s/oauth2/auth?%s

Discovery: %s/.well-known/openid-configuration
Admin console (sign in as the demo user): http://%s/admin/
================================================
`, clientSecret, password, clientSecret, cfg.Issuer, cfg.Issuer, q.Encode(), cfg.Issuer, cfg.AdminAddr)
	return err
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
