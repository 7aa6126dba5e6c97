package console_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v3"
	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/admin"
	seedfile "github.com/bulwark-auth/bulwark/storage/seed"
)

// The same client declared through the admin API, the seed file and the
// console form is stored identically: one owner of defaults and
// validation (storage.Client.Normalize / Validate via ClientSpec).
func TestSameClientEverySurface(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	type surfaceInput struct {
		api  string // admin API JSON members after client_id
		yaml string // seed entry lines after client_id
		form map[string]string
		drop []string // form fields to clear (default checkboxes)
	}
	cases := []struct {
		name string
		in   surfaceInput
	}{
		{"case=defaults", surfaceInput{
			api:  `"client_name":"Min","redirect_uris":["https://app.example/cb"]`,
			yaml: "    client_secret: a-seed-secret-of-some-length\n    client_name: Min\n    redirect_uris: [\"https://app.example/cb\"]\n",
			form: map[string]string{"name": "Min", "redirect_uris": "https://app.example/cb"},
		}},
		{"case=every-field", surfaceInput{
			api: `"client_name":"Partner","grant_types":["client_credentials","urn:ietf:params:oauth:grant-type:token-exchange"],` +
				`"scope":"api:read api:write","audience":["https://api.example","https://other.example"],` +
				`"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"ES256","jwks":` + string(jwk) + `,` +
				`"request_object_signing_alg":"ES256","id_token_signed_response_alg":"ES256","application_type":"web","logo_uri":"https://partner.example/logo.png",` +
				`"client_uri":"https://partner.example","contacts":["ops@partner.example"],"skip_consent":true,` +
				`"access_token_lifespan":"15m","refresh_token_lifespan":"720h","id_token_lifespan":"1h"`,
			yaml: "    client_name: Partner\n    grant_types: [client_credentials, \"urn:ietf:params:oauth:grant-type:token-exchange\"]\n" +
				"    scope: api:read api:write\n    audience: [\"https://api.example\", \"https://other.example\"]\n" +
				"    token_endpoint_auth_method: private_key_jwt\n    token_endpoint_auth_signing_alg: ES256\n    jwks: " + string(jwk) + "\n" +
				"    request_object_signing_alg: ES256\n    id_token_signed_response_alg: ES256\n    application_type: web\n    logo_uri: https://partner.example/logo.png\n" +
				"    client_uri: https://partner.example\n    contacts: [ops@partner.example]\n    skip_consent: true\n" +
				"    access_token_lifespan: 15m\n    refresh_token_lifespan: 720h\n    id_token_lifespan: 1h\n",
			form: map[string]string{
				"name": "Partner", "grant_client_credentials": "on", "grant_urn:ietf:params:oauth:grant-type:token-exchange": "on",
				"scope": "api:read api:write", "audience": "https://api.example\nhttps://other.example",
				"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256", "jwks": string(jwk),
				"request_object_signing_alg": "ES256", "id_token_signed_response_alg": "ES256", "application_type": "web", "logo_uri": "https://partner.example/logo.png",
				"client_uri": "https://partner.example", "contacts": "ops@partner.example", "skip_consent": "on",
				"access_token_lifespan": "15m", "refresh_token_lifespan": "720h", "id_token_lifespan": "1h",
			},
			drop: []string{"grant_authorization_code", "grant_refresh_token"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			e.addUser("root", allScopes...)

			// Admin API.
			r := mux.NewRouter()
			admin.NewAPI(e.svc, nil, admin.WithPrincipal(func(context.Context) (*apikeys.Principal, bool) {
				return &apikeys.Principal{KeyID: "t", OwnerType: apikeys.OwnerService, OwnerID: "t", Scopes: apikeys.AllScopes}, true
			})).Register(r)
			srv := httptest.NewServer(r)
			defer srv.Close()
			res, err := srv.Client().Post(srv.URL+admin.Prefix+"/clients", "application/json",
				strings.NewReader(`{"client_id":"via-api",`+c.in.api+`}`))
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				t.Fatalf("admin API: %d", res.StatusCode)
			}

			// Seed file.
			doc, err := seedfile.Parse(strings.NewReader("clients:\n  - client_id: via-seed\n" + c.in.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := (&seedfile.Applier{Store: e.store, Hasher: e.hasher}).Apply(ctx, doc); err != nil {
				t.Fatal(err)
			}

			// Console: the new-client form as a browser submits it.
			b := e.browser()
			b.login("root")
			p := b.get("/admin/clients/new")
			form := formValues(t, p.body, "/admin/clients/new")
			for _, k := range c.in.drop {
				form.Del(k)
			}
			for k, v := range c.in.form {
				form.Set(k, v)
			}
			form.Set("client_id", "via-console")
			if p = b.submit("/admin/clients/new", "/admin/clients/new", form); p.status != http.StatusOK && p.status != http.StatusSeeOther {
				t.Fatalf("console: %d", p.status)
			}

			var specs []string
			for _, id := range []string{"via-api", "via-seed", "via-console"} {
				cl, err := e.store.ClientByID(ctx, id)
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				spec := cl.Spec()
				spec.ID = ""
				j, err := json.Marshal(spec)
				if err != nil {
					t.Fatal(err)
				}
				specs = append(specs, string(j))
			}
			if specs[0] != specs[1] || specs[0] != specs[2] {
				t.Fatalf("stored clients differ:\napi     %s\nseed    %s\nconsole %s", specs[0], specs[1], specs[2])
			}
			if c.name == "case=every-field" && !strings.Contains(specs[0], `"id_token_signed_response_alg":"ES256"`) {
				t.Fatalf("every field: %s", specs[0])
			}
			if c.name == "case=defaults" && !strings.Contains(specs[0], `"grant_types":["authorization_code","refresh_token"]`) {
				t.Fatalf("defaults: %s", specs[0])
			}
		})
	}
}
