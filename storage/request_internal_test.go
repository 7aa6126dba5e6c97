package storage

import (
	"encoding/json"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/ory/fosite"
)

// storedShapes are the requests Bulwark stores: client credentials, an
// authorization code with a full OpenID Connect session, a pushed
// authorization request, a DPoP-bound token exchange, and no session.
func storedShapes() map[string]fosite.Requester {
	at := time.Date(2026, 12, 3, 14, 5, 6, 789000000, time.UTC)

	cc := fosite.NewRequest()
	ccSess := NewSession("svc")
	ccSess.ClientID = "svc"
	ccSess.SetExpiresAt(fosite.AccessToken, at.Add(10*time.Minute))
	ccSess.AccessClaims.Issuer, ccSess.AccessClaims.JTI = "https://auth.example.com", "0d9f5c1e"
	ccSess.AccessClaims.Audience, ccSess.AccessClaims.Scope = []string{"https://api.example.com"}, []string{"api:read"}
	ccSess.AccessClaims.IssuedAt, ccSess.AccessClaims.ExpiresAt = at, at.Add(10*time.Minute)
	ccSess.AccessClaims.Extra["client_id"] = "svc"
	ccSess.AccessHeader.Extra["kid"], ccSess.AccessHeader.Extra["typ"] = "es256-1", "at+jwt"
	cc.ID, cc.RequestedAt, cc.Client, cc.Session = "req-1", at, &Client{ID: "svc"}, ccSess
	cc.Form = url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
	cc.RequestedScope, cc.GrantedScope = fosite.Arguments{"api:read"}, fosite.Arguments{"api:read"}

	code := fosite.NewAuthorizeRequest()
	oidc := NewSession("alice")
	oidc.ClientID = "web"
	oidc.Username = "alice@example.com"
	oidc.Claims.Issuer, oidc.Claims.Audience, oidc.Claims.Nonce = "https://auth.example.com", []string{"web"}, "n-0S6_WzA2Mj"
	oidc.Claims.AuthTime, oidc.Claims.RequestedAt, oidc.Claims.IssuedAt = at.Add(-time.Minute), at, at
	oidc.Claims.AuthenticationMethodsReferences = []string{"pwd", "otp"}
	oidc.Claims.Extra["sid"] = "s-1"
	oidc.Claims.Extra["nested"] = map[string]any{"n": 1.5, "b": true, "list": []any{"x", 2.0, nil}, "html": "<a&b>"}
	oidc.Headers.Extra["kid"] = "rs256-1"
	oidc.SetExpiresAt(fosite.AuthorizeCode, at.Add(5*time.Minute))
	oidc.SetExpiresAt(fosite.AccessToken, at.Add(time.Hour))
	oidc.SetExpiresAt(fosite.RefreshToken, at.Add(720*time.Hour))
	code.ID, code.RequestedAt, code.Client, code.Session = "req-2", at, &Client{ID: "web"}, oidc
	code.Form = url.Values{"redirect_uri": {"https://app.example.com/cb"}, "state": {"s t\u2028<x>"}, "nonce": {"n-0S6_WzA2Mj"}}
	code.RequestedScope, code.GrantedScope = fosite.Arguments{"openid", "profile", "offline_access"}, fosite.Arguments{"openid", "offline_access"}
	code.RequestedAudience, code.GrantedAudience = fosite.Arguments{"https://api.example.com"}, fosite.Arguments{"https://api.example.com"}
	code.ResponseTypes, code.State = fosite.Arguments{"code"}, "s t\u2028<x>"
	code.RedirectURI, _ = url.Parse("https://app.example.com/cb?x=1")
	code.SetResponseTypeHandled("code")
	code.ResponseMode, code.DefaultResponseMode = fosite.ResponseModeQuery, fosite.ResponseModeQuery

	bound := fosite.NewRequest()
	bs := NewSession("svc")
	bs.ClientID, bs.APIKeyID, bs.DPoPJKT = "svc", "k-1", "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	bs.AccessClaims.Extra["cnf"] = map[string]any{"jkt": bs.DPoPJKT}
	bound.ID, bound.RequestedAt, bound.Client, bound.Session = "req-3", at, &Client{ID: "svc"}, bs
	bound.Form = url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "ünïcode": {"日本", ""}}

	bare := fosite.NewRequest()
	bare.ID, bare.RequestedAt, bare.Client, bare.Session = "req-4", at, &Client{ID: "svc"}, nil

	return map[string]fosite.Requester{"client credentials": cc, "authorization code with OIDC session": code, "DPoP-bound exchange": bound, "no session": bare}
}

// TestCodecMatchesEncodingJSON: the stored document go-json writes is the
// one encoding/json writes, byte for byte, and decoding it with go-json
// gives exactly what encoding/json gives, for every stored shape.
func TestCodecMatchesEncodingJSON(t *testing.T) {
	withStd := func(f func()) {
		m, u := marshal, unmarshal
		marshal, unmarshal = json.Marshal, json.Unmarshal
		defer func() { marshal, unmarshal = m, u }()
		f()
	}
	for name, r := range storedShapes() {
		t.Run(name, func(t *testing.T) {
			got, err := EncodeRequest("sig", r, fosite.AccessToken, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			var want *TokenRecord
			withStd(func() { want, err = EncodeRequest("sig", r, fosite.AccessToken, time.Hour) })
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Data) != string(want.Data) {
				t.Fatalf("stored document differs:\n go-json %s\nstd json %s", got.Data, want.Data)
			}
			dec, err := DecodeRequest(got, r.GetClient(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var ref fosite.Requester
			withStd(func() { ref, err = DecodeRequest(want, r.GetClient(), nil) })
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(dec, ref) {
				t.Fatalf("decoded request differs:\n go-json %#v\nstd json %#v", dec, ref)
			}
			if !reflect.DeepEqual(dec.GetSession(), ref.GetSession()) {
				t.Fatalf("decoded session differs:\n go-json %#v\nstd json %#v", dec.GetSession(), ref.GetSession())
			}
		})
	}
}
