package storage_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// clientCredentialsRequest is what a client-credentials token stores.
func clientCredentialsRequest() *fosite.Request {
	now := time.Now().UTC().Truncate(time.Second)
	sess := storage.NewSession("svc")
	sess.ClientID = "svc"
	sess.SetExpiresAt(fosite.AccessToken, now.Add(10*time.Minute))
	sess.AccessClaims.Issuer = "https://auth.example.com"
	sess.AccessClaims.JTI = "0d9f5c1e-6b7a-4c1e-9a55-3f0b8b9f3a21"
	sess.AccessClaims.Audience = []string{"https://api.example.com"}
	sess.AccessClaims.IssuedAt, sess.AccessClaims.ExpiresAt = now, now.Add(10*time.Minute)
	sess.AccessClaims.Scope = []string{"api:read", "api:write"}
	sess.AccessClaims.Extra["client_id"] = "svc"
	sess.GetJWTHeader().Extra["kid"] = "es256-20261203"
	r := fosite.NewRequest()
	r.ID, r.RequestedAt, r.Client, r.Session = "8b1f0c2e-5d7a-4e11-b9a4-2f6c1d0e9a73", now, &storage.Client{ID: "svc"}, sess
	r.Form = url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read api:write"}}
	r.RequestedScope, r.GrantedScope = fosite.Arguments{"api:read", "api:write"}, fosite.Arguments{"api:read", "api:write"}
	return r
}

// The stored document is valid JSON (Postgres stores it as jsonb) and
// decodes to the request and session that were encoded, with or without
// a session.
func TestEncodeRequestRoundTrip(t *testing.T) {
	for _, withSession := range []bool{true, false} {
		r := clientCredentialsRequest()
		if !withSession {
			r.Session = nil
		}
		rec, err := storage.EncodeRequest("sig", r, fosite.AccessToken, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(rec.Data) {
			t.Fatalf("session=%v: invalid JSON %s", withSession, rec.Data)
		}
		got, err := storage.DecodeRequest(rec, &storage.Client{ID: "svc"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.GetID() != r.ID || !got.GetRequestedAt().Equal(r.RequestedAt) || got.GetRequestForm().Get("scope") != "api:read api:write" ||
			strings.Join(got.GetGrantedScopes(), " ") != "api:read api:write" {
			t.Fatalf("session=%v: decoded %+v", withSession, got)
		}
		sess := got.GetSession().(*storage.Session)
		if withSession && (sess.ClientID != "svc" || sess.AccessClaims.JTI != r.Session.(*storage.Session).AccessClaims.JTI ||
			sess.AccessHeader.Extra["kid"] != "es256-20261203" || !sess.GetExpiresAt(fosite.AccessToken).Equal(r.RequestedAt.Add(10*time.Minute))) {
			t.Fatalf("decoded session %+v", sess)
		}
	}
}

// BenchmarkEncodeRequest encodes what a client-credentials token stores.
func BenchmarkEncodeRequest(b *testing.B) {
	r := clientCredentialsRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := storage.EncodeRequest("sig", r, fosite.AccessToken, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRequest decodes what a client-credentials token stores
// (introspection and every token lookup pay it).
func BenchmarkDecodeRequest(b *testing.B) {
	rec, err := storage.EncodeRequest("sig", clientCredentialsRequest(), fosite.AccessToken, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	client := &storage.Client{ID: "svc"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := storage.DecodeRequest(rec, client, nil); err != nil {
			b.Fatal(err)
		}
	}
}
