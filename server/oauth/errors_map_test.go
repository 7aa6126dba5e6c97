package oauth

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// TestOAuthErrorMapsStoreSentinels: fosite reports every store error as
// server_error; the sentinels that mean the client's request lost or was
// malformed must come out as their 4xx.
func TestOAuthErrorMapsStoreSentinels(t *testing.T) {
	t.Parallel()
	consumed := fmt.Errorf("postgres: invalidate code: already used: %w", fosite.ErrInvalidatedAuthorizeCode)
	badBytes := fmt.Errorf("postgres: get client: %w: 22021", storage.ErrInvalidInput)
	cases := []struct {
		name   string
		in     error
		status int
		code   string
	}{
		{"case=code consumed, wrapped in server_error", fosite.ErrServerError.WithWrap(consumed), http.StatusBadRequest, "invalid_grant"},
		{"case=code consumed, bare", consumed, http.StatusBadRequest, "invalid_grant"},
		{"case=bad bytes, wrapped in server_error", fosite.ErrServerError.WithWrap(badBytes), http.StatusBadRequest, "invalid_request"},
		{"case=bad bytes, bare", badBytes, http.StatusBadRequest, "invalid_request"},
		{"case=an OAuth error keeps its code", fosite.ErrInvalidClient.WithWrap(badBytes), http.StatusUnauthorized, "invalid_client"},
		{"case=anything else stays a 500", errors.New("boom"), http.StatusInternalServerError, "server_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, code, _ := classify(oauthError(c.in))
			if status != c.status || code != c.code {
				t.Fatalf("got %d %s, want %d %s", status, code, c.status, c.code)
			}
			rfc := fosite.ErrorToRFC6749Error(oauthError(c.in))
			if c.status < 500 && (rfc.CodeField != c.status || rfc.ErrorField != c.code) {
				t.Fatalf("fosite writers would answer %d %s", rfc.CodeField, rfc.ErrorField)
			}
		})
	}
}
