package console_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v3"

	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

const tokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// Editing a private_key_jwt client in the console must keep its
// authentication method, JWKS and token exchange grant: the form shows
// every field, so submitting it as shown changes only what was edited.
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
	// Submit what a browser submits: every field as shown, the name
	// changed.
	form := formValues(t, p.body, "/admin/clients/partner/edit")
	form.Set("name", "Partner renamed")
	method := form.Get("token_endpoint_auth_method")
	p = b.submit("/admin/clients/partner/edit", "/admin/clients/partner/edit", form)
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
	if c.JWKS == nil || len(c.JWKS.Keys) != 1 || c.JWKS.Keys[0].KeyID != "p1" || c.TokenEndpointAuthSigningAlg != "ES256" {
		t.Fatalf("after edit: jwks %+v alg %q", c.JWKS, c.TokenEndpointAuthSigningAlg)
	}
	// The token exchange grant stays.
	if !slices.Equal(c.GrantTypes, []string{"client_credentials", tokenExchange}) {
		t.Fatalf("grant types after edit: %v", c.GrantTypes)
	}
}
