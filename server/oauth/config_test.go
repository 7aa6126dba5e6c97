package oauth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

func TestConfigValidationReportsEverything(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Issuer: "https://auth.example/", GlobalSecret: []byte("short")})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"issuer must be", "store is required", "access token signer", "ID token signer",
		"algorithms are required", "JWKS source", "hasher is required", "global secret"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// downStore fails client lookups as an unreachable database would.
type downStore struct{ *memory.Store }

func (downStore) GetClient(context.Context, string) (fosite.Client, error) {
	return nil, fmt.Errorf("memory: dial: %w", storage.ErrUnavailable)
}

func TestDatabaseUnavailableIs503(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.p.cfg.Store = downStore{e.store}
	e.p.oauth = fosite.NewOAuth2Provider(downStore{e.store}, e.p.fc)

	resp, out := e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}}, "svc", svcSecret)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || out["error"] != "temporarily_unavailable" {
		t.Fatalf("token: %d %v", resp.StatusCode, out)
	}
	r, err := noRedirect.Get(authURL(e, baseAuthParams("web-app", webRedirect)))
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, r)
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Location") != "" || strings.Contains(body, "dial") {
		t.Fatalf("authorize: %d %s", r.StatusCode, body)
	}
}
