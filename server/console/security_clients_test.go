package console_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v3"

	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

const tokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// Editing a private_key_jwt client in the console (whose form offers only
// secret methods and none) must keep its authentication method, not
// silently switch it to a client secret; grant types without a checkbox
// must survive the edit too.
func TestConsoleEditKeepsUnlistedAuthMethod(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "p1", Algorithm: "ES256", Use: "sig"}}}
	_, _, err = e.svc.CreateClient(context.Background(), admin.Actor{ID: "test", Scopes: allScopes}, admin.ClientInput{
		ID: "partner", GrantTypes: []string{"client_credentials", tokenExchange}, TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT,
		TokenEndpointAuthSigningAlg: "ES256", JWKS: jwks,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login("root")
	p := b.get("/admin/clients/partner/edit")
	// What a browser submits for the select: the selected option, or the
	// first one when none is selected.
	sel := regexp.MustCompile(`(?s)<select id="token_endpoint_auth_method"[^>]*>(.*?)</select>`).FindStringSubmatch(p.body)
	if sel == nil {
		t.Fatalf("no auth method select: %d", p.status)
	}
	opts := regexp.MustCompile(`<option value="([^"]+)"( selected)?>`).FindAllStringSubmatch(sel[1], -1)
	method := ""
	for _, o := range opts {
		if o[2] != "" || method == "" {
			method = o[1]
		}
		if o[2] != "" {
			break
		}
	}
	version := regexp.MustCompile(`name="version" value="(\d+)"`).FindStringSubmatch(p.body)
	p = b.submit("/admin/clients/partner/edit", "/admin/clients/partner/edit", url.Values{
		"name": {"Partner renamed"}, "grant_client_credentials": {"on"}, "version": {version[1]},
		"token_endpoint_auth_method": {method}, "application_type": {"web"},
	})
	if p.status != http.StatusSeeOther || strings.Contains(p.body, "Client secret") {
		t.Fatalf("edit: %d (submitted method %q)", p.status, method)
	}
	c, err := e.store.ClientByID(context.Background(), "partner")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Partner renamed" || c.TokenEndpointAuthMethod != storage.AuthMethodPrivateKeyJWT || c.SecretHash != "" {
		t.Fatalf("after edit: name %q method %q secret set %v", c.Name, c.TokenEndpointAuthMethod, c.SecretHash != "")
	}
	// The token exchange grant has no checkbox either; it stays.
	if !slices.Equal(c.GrantTypes, []string{"client_credentials", tokenExchange}) {
		t.Fatalf("grant types after edit: %v", c.GrantTypes)
	}
}
