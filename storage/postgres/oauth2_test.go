package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

func TestAuthorizeCodeInvalidation(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	if err := s.CreateAuthorizeCodeSession(ctx, "code-sig", newRequest("req1", "alice")); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAuthorizeCodeSession(ctx, "code-sig", storage.NewSession(""))
	if err != nil || got.GetID() != "req1" || got.GetSession().GetSubject() != "alice" || got.GetClient().GetID() != "c1" {
		t.Fatalf("get active code = %v, %v", got, err)
	}
	if err := s.InvalidateAuthorizeCodeSession(ctx, "code-sig"); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetAuthorizeCodeSession(ctx, "code-sig", nil)
	if !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) || got == nil || got.GetID() != "req1" {
		t.Fatalf("invalidated code = %v, %v; want requester and ErrInvalidatedAuthorizeCode", got, err)
	}
	if err := s.InvalidateAuthorizeCodeSession(ctx, "unknown"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("invalidate unknown = %v", err)
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, "unknown", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("get unknown = %v", err)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	r := newRequest("fam", "alice")
	for _, sig := range []string{"at1", "at2"} {
		if err := s.CreateAccessTokenSession(ctx, sig, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRefreshTokenSession(ctx, "rt1", "at1", r); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateRefreshToken(ctx, "fam", "rt1"); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{"at1", "at2"} {
		if _, err := s.GetAccessTokenSession(ctx, sig, nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("access token %s after rotation: %v; want ErrNotFound", sig, err)
		}
	}
	got, err := s.GetRefreshTokenSession(ctx, "rt1", storage.NewSession(""))
	if !errors.Is(err, fosite.ErrInactiveToken) || got == nil || got.GetID() != "fam" {
		t.Fatalf("rotated refresh = %v, %v; want requester and ErrInactiveToken", got, err)
	}
	// A second rotation of the same token lost a race.
	if err := s.RotateRefreshToken(ctx, "fam", "rt1"); !errors.Is(err, fosite.ErrSerializationFailure) {
		t.Fatalf("second rotation = %v; want ErrSerializationFailure", err)
	}
	if err := s.RotateRefreshToken(ctx, "fam", "nope"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("rotate unknown = %v; want ErrNotFound", err)
	}
}

func TestRevokeByRequestIDHitsFamily(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	fam, other := newRequest("fam", "alice"), newRequest("other", "alice")
	for _, c := range []struct {
		sig string
		r   fosite.Requester
	}{{"a1", fam}, {"a2", fam}, {"a3", other}} {
		if err := s.CreateAccessTokenSession(ctx, c.sig, c.r); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRefreshTokenSession(ctx, "r"+c.sig, c.sig, c.r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeAccessToken(ctx, "fam"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeRefreshToken(ctx, "fam"); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{"a1", "a2"} {
		if _, err := s.GetAccessTokenSession(ctx, sig, nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("%s: %v", sig, err)
		}
		if _, err := s.GetRefreshTokenSession(ctx, "r"+sig, nil); !errors.Is(err, fosite.ErrInactiveToken) {
			t.Fatalf("r%s: %v", sig, err)
		}
	}
	if _, err := s.GetAccessTokenSession(ctx, "a3", nil); err != nil {
		t.Fatalf("other family's access token: %v", err)
	}
	if _, err := s.GetRefreshTokenSession(ctx, "ra3", nil); err != nil {
		t.Fatalf("other family's refresh token: %v", err)
	}
	if err := s.RevokeAccessToken(ctx, "no-such-request"); err != nil {
		t.Fatalf("revoke unknown request: %v", err)
	}
}

func TestPKCEOIDCPARRoundTrip(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	r := newRequest("req", "bob")
	r.Form.Set("code_challenge", "challenge-value")
	if err := s.CreatePKCERequestSession(ctx, "code", r); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOpenIDConnectSession(ctx, "raw-code", r); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetPKCERequestSession(ctx, "code", nil)
	if err != nil || got.GetRequestForm().Get("code_challenge") != "challenge-value" {
		t.Fatalf("pkce = %v, %v", got, err)
	}
	oidc, err := s.GetOpenIDConnectSession(ctx, "raw-code", fosite.NewAccessRequest(storage.NewSession("")))
	if err != nil || oidc.GetSession().GetSubject() != "bob" {
		t.Fatalf("oidc = %v, %v", oidc, err)
	}
	// The PKCE row outlives fosite's delete and goes with its code.
	must(t, s.DeletePKCERequestSession(ctx, "code"))
	if _, err := s.GetPKCERequestSession(ctx, "code", nil); err != nil {
		t.Fatalf("pkce after delete: %v", err)
	}
	must(t, s.CreateAuthorizeCodeSession(ctx, "code", r))
	must(t, s.InvalidateAuthorizeCodeSession(ctx, "code"))
	if _, err := s.GetPKCERequestSession(ctx, "code", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("pkce after its code was consumed: %v", err)
	}
	must(t, s.DeleteOpenIDConnectSession(ctx, "raw-code"))
	if _, err := s.GetOpenIDConnectSession(ctx, "raw-code", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("deleted oidc: %v", err)
	}

	ar := fosite.NewAuthorizeRequest()
	ar.ID = "par-req"
	ar.Client = &storage.Client{ID: "c1"}
	ar.Session = storage.NewSession("")
	ar.State = "state-12345"
	ar.ResponseTypes = fosite.Arguments{"code"}
	ar.RequestedAt = time.Now().UTC()
	if err := s.CreatePARSession(ctx, "urn:ietf:params:oauth:request_uri:abc", ar); err != nil {
		t.Fatal(err)
	}
	par, err := s.GetPARSession(ctx, "urn:ietf:params:oauth:request_uri:abc")
	if err != nil || par.GetState() != "state-12345" || !par.GetResponseTypes().ExactOne("code") {
		t.Fatalf("par = %+v, %v", par, err)
	}
	must(t, s.DeletePARSession(ctx, "urn:ietf:params:oauth:request_uri:abc"))
	if _, err := s.GetPARSession(ctx, "urn:ietf:params:oauth:request_uri:abc"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("deleted par: %v", err)
	}
}

func TestClientAssertionJTI(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	if err := s.ClientAssertionJWTValid(ctx, "jti-1"); err != nil {
		t.Fatalf("unknown jti: %v", err)
	}
	must(t, s.SetClientAssertionJWT(ctx, "jti-1", time.Now().Add(time.Minute)))
	if err := s.ClientAssertionJWTValid(ctx, "jti-1"); !errors.Is(err, fosite.ErrJTIKnown) {
		t.Fatalf("known jti: %v", err)
	}
	if err := s.SetClientAssertionJWT(ctx, "jti-1", time.Now().Add(time.Minute)); !errors.Is(err, fosite.ErrJTIKnown) {
		t.Fatalf("replayed jti: %v", err)
	}
	// An expired entry is replaced, not refused.
	must(t, s.SetClientAssertionJWT(ctx, "jti-2", time.Now().Add(-time.Minute)))
	if err := s.ClientAssertionJWTValid(ctx, "jti-2"); err != nil {
		t.Fatalf("expired jti: %v", err)
	}
	must(t, s.SetClientAssertionJWT(ctx, "jti-2", time.Now().Add(time.Minute)))
}

func TestDisabledOrDeletedClient(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	must(t, s.CreateAccessTokenSession(ctx, "at", newRequest("req", "alice")))
	c, err := s.ClientByID(ctx, "c1")
	must(t, err)
	c.Disabled = true
	must(t, s.UpdateClient(ctx, c, c.Version))
	if _, err := s.GetClient(ctx, "c1"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("GetClient of disabled client = %v; want ErrNotFound", err)
	}
	must(t, s.DeleteClient(ctx, "c1"))
	if _, err := s.GetAccessTokenSession(ctx, "at", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("token of deleted client = %v", err)
	}
	if err := s.DeleteClient(ctx, "c1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("delete unknown client = %v", err)
	}
}

func TestRevokeTokensByClientAndSubject(t *testing.T) {
	s := storeWithClient(t)
	ctx := ctxT(t)
	must(t, s.CreateClient(ctx, &storage.Client{ID: "c2"}))
	a, b := newRequest("ra", "alice"), newRequest("rb", "bob")
	c2 := newRequest("rc", "alice")
	c2.Client = &storage.Client{ID: "c2"}
	for _, x := range []struct {
		sig string
		r   fosite.Requester
	}{{"a", a}, {"b", b}, {"c", c2}} {
		must(t, s.CreateAccessTokenSession(ctx, x.sig, x.r))
		must(t, s.CreateRefreshTokenSession(ctx, "r"+x.sig, x.sig, x.r))
	}
	must(t, s.CreateAuthorizeCodeSession(ctx, "code-a", a))

	n, err := s.RevokeTokensBySubjectAndClient(ctx, "alice", "c1")
	if err != nil || n != 2 {
		t.Fatalf("by subject+client = %d, %v; want 2", n, err)
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, "code-a", nil); !errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		t.Fatalf("code after revocation = %v", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "c", nil); err != nil {
		t.Fatalf("alice's token at c2 must survive: %v", err)
	}
	n, err = s.RevokeTokensBySubject(ctx, "alice")
	if err != nil || n != 2 {
		t.Fatalf("by subject = %d, %v; want 2", n, err)
	}
	n, err = s.RevokeTokensByClient(ctx, "c1")
	if err != nil || n != 2 {
		t.Fatalf("by client = %d, %v; want 2 (bob's pair)", n, err)
	}
	if n, err := s.RevokeTokensBySubject(ctx, ""); err != nil || n != 0 {
		t.Fatalf("empty subject = %d, %v", n, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
