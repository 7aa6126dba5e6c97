package apikeyauth

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// SelfRotator is what the self-rotation endpoint needs (apikeys.Service).
type SelfRotator interface {
	CollectOrRotate(ctx context.Context, oldToken string) (string, *storage.APIKey, error)
	Get(ctx context.Context, id string) (*storage.APIKey, error)
}

// SelfRotateResponse is the JSON answer of POST /apikeys/self/rotate.
type SelfRotateResponse struct {
	// APIKey is the successor's full token, returned this once.
	APIKey string `json:"api_key"`
	ID     string `json:"id"`
	// ExpiresAt is the successor's hard end, null when it has none.
	ExpiresAt *time.Time `json:"expires_at"`
	// RotateAt is when the successor itself will be rotated.
	RotateAt *time.Time `json:"rotate_at"`
	OldKeyID string     `json:"old_key_id"`
	// OldKeyExpiresAt is the end of the old key's grace period: switch
	// before then.
	OldKeyExpiresAt *time.Time `json:"old_key_expires_at"`
}

// SelfRotateHandler serves POST /apikeys/self/rotate. The old key
// authenticates the request itself (Authorization: Bearer bwk_...), so it
// needs no Middleware in front. If a scheduled rotation left a successor to
// collect, its token is returned once; if the key is active, it is rotated
// now and the successor returned. 409 means there is nothing to collect
// (already collected, or rotated by an admin who handed the new key out).
type SelfRotateHandler struct {
	svc SelfRotator
	o   options
}

// SelfRotatePath is where the self-rotation endpoint is mounted.
const SelfRotatePath = "/apikeys/self/rotate"

// Register mounts the self-rotation endpoint with its protection policy:
// an API endpoint in the token class (the old key is the credential).
func (h *SelfRotateHandler) Register(r *mux.Router) {
	r.Handle(SelfRotatePath, protect.Route(protect.OAuthEndpoint(protect.ClassToken), h)).Methods(http.MethodPost)
}

// SelfRotate returns the self-rotation handler.
func SelfRotate(svc SelfRotator, opts ...Option) *SelfRotateHandler {
	return &SelfRotateHandler{svc: svc, o: newOptions(opts)}
}

func (h *SelfRotateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
			"error": "invalid_request", "error_description": "use POST",
		})
		return
	}
	tok, ok := BearerToken(r)
	if !ok {
		h.o.failed(r, "missing")
		h.o.challenge(w, "", "missing bearer api key")
		return
	}
	newTok, succ, err := h.svc.CollectOrRotate(r.Context(), tok)
	switch {
	case err == nil:
	case errors.Is(err, apikeys.ErrNoPendingSuccessor), errors.Is(err, apikeys.ErrNotActive):
		writeJSON(w, http.StatusConflict, map[string]string{
			"error":             "no_pending_successor",
			"error_description": "there is no new key to collect: it was collected already or issued by an administrator",
		})
		return
	case errors.Is(err, apikeys.ErrConflict):
		writeJSON(w, http.StatusConflict, map[string]string{
			"error": "concurrent_change", "error_description": "the key changed meanwhile; retry",
		})
		return
	default:
		h.o.verifyError(w, r, err)
		return
	}
	reqinfo.From(r.Context()).SetSubject("apikey:" + succ.ReplacesID)
	resp := SelfRotateResponse{
		APIKey: newTok, ID: succ.ID, OldKeyID: succ.ReplacesID,
		ExpiresAt: timePtr(succ.ExpiresAt), RotateAt: timePtr(succ.RotateAt),
	}
	// The successor exists and its token must reach the holder even if
	// reading the old key back fails; the old key's end is then omitted.
	if old, err := h.svc.Get(r.Context(), succ.ReplacesID); err == nil {
		resp.OldKeyExpiresAt = timePtr(old.ExpiresAt)
	} else {
		h.o.log.WithError(err).WithField("key_id", succ.ReplacesID).Warn("apikeyauth: reading rotated key failed")
	}
	writeJSON(w, http.StatusOK, resp)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
