package oauth

import (
	"context"
	"errors"
	"testing"

	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"
)

// grantHandler is a token endpoint handler for one grant that records
// whether it was entered.
type grantHandler struct {
	grant   string
	entered int
}

var errEntered = errors.New("entered")

func (h *grantHandler) HandleTokenEndpointRequest(context.Context, fosite.AccessRequester) error {
	h.entered++
	return errEntered
}

func (h *grantHandler) PopulateTokenEndpointResponse(context.Context, fosite.AccessRequester, fosite.AccessResponder) error {
	h.entered++
	return errEntered
}

func (h *grantHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

func (h *grantHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(h.grant)
}

func TestSkipUnknown(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, grant string
		wantEntered bool
	}{
		{"case=its own grant reaches the handler", "refresh_token", true},
		{"case=another grant is declined without entering it", "client_credentials", false},
		{"case=no grant is declined", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := &grantHandler{grant: "refresh_token"}
			h := skipUnknown{inner}
			r := fosite.NewAccessRequest(nil)
			if tc.grant != "" {
				r.GrantTypes = fosite.Arguments{tc.grant}
			}
			errs := []error{h.HandleTokenEndpointRequest(ctx, r), h.PopulateTokenEndpointResponse(ctx, r, fosite.NewAccessResponse())}
			for _, err := range errs {
				if tc.wantEntered && !errors.Is(err, errEntered) {
					t.Fatalf("got %v, want the handler's own answer", err)
				}
				if !tc.wantEntered && !errors.Is(err, fosite.ErrUnknownRequest) {
					t.Fatalf("got %v, want fosite.ErrUnknownRequest", err)
				}
			}
			if got := inner.entered > 0; got != tc.wantEntered {
				t.Fatalf("entered %d times, want entered=%v", inner.entered, tc.wantEntered)
			}
		})
	}
}

// TestEveryTokenHandlerIsComposed guards against fosite's Append, which
// silently drops a second handler of the same Go type (every skipUnknown).
func TestEveryTokenHandlerIsComposed(t *testing.T) {
	p, _, _ := newTestProvider(t, "https://issuer.example", fastHasher(t), logrus.New(), nil)
	want := 7 // code, OIDC code, PKCE, client credentials, refresh, OIDC refresh, device code
	if p.cfg.APIKeys != nil {
		want++ // token exchange
	}
	if got := len(p.fc.TokenEndpointHandlers); got != want {
		t.Fatalf("%d token endpoint handlers composed, want %d", got, want)
	}
	wrapped := 0
	for _, h := range p.fc.TokenEndpointHandlers {
		if _, ok := h.(skipUnknown); ok {
			wrapped++
		}
	}
	if wrapped != 5 {
		t.Fatalf("%d handlers wrapped in skipUnknown, want 5", wrapped)
	}
}
