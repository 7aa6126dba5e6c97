package admin

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/storage"
)

// initialTokenServerFields are set by the server; a create refuses them.
var initialTokenServerFields = []string{"id", "token", "registered", "expires_at", "revoked_at", "created_by", "created_at"}

// initialTokenView is an initial access token as the API shows it. Token
// is present only in the response that created it.
type initialTokenView struct {
	ID          string     `json:"id"`
	Token       string     `json:"token,omitempty"`
	Description string     `json:"description"`
	Scope       string     `json:"scope"`
	GrantTypes  []string   `json:"grant_types"`
	MaxClients  int        `json:"max_clients"`
	Registered  int        `json:"registered"`
	ExpiresAt   time.Time  `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
}

func viewInitialToken(t *storage.InitialAccessToken) initialTokenView {
	scope, _ := storage.SpaceSeparated(t.Scopes).MarshalText()
	return initialTokenView{
		ID: t.ID, Description: t.Description, Scope: string(scope), GrantTypes: nonNilSlice(t.GrantTypes),
		MaxClients: t.MaxClients, Registered: t.Registered, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt,
		CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
	}
}

func (a *API) listInitialTokens(w http.ResponseWriter, r *http.Request, _ Actor) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	ts, err := a.svc.ListInitialAccessTokens(r.Context(), opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newPage(ts, opts.Limit, viewInitialToken, func(t *storage.InitialAccessToken) string { return t.ID }))
	return nil
}

func (a *API) createInitialToken(w http.ResponseWriter, r *http.Request, act Actor) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if err := checkDurations(body, []string{"expires_in"}, "invalid_request"); err != nil {
		return err
	}
	var in InitialTokenInput
	if err := decodeStrict(body, &in, "invalid_request", initialTokenServerFields); err != nil {
		return err
	}
	t, token, err := a.svc.CreateInitialAccessToken(r.Context(), act, in)
	if err != nil {
		return err
	}
	v := viewInitialToken(t)
	v.Token = token
	w.Header().Set("Location", Prefix+"/registration/tokens/"+t.ID)
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (a *API) getInitialToken(w http.ResponseWriter, r *http.Request, _ Actor) error {
	t, err := a.svc.GetInitialAccessToken(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewInitialToken(t))
	return nil
}

func (a *API) revokeInitialToken(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	t, err := a.svc.RevokeInitialAccessToken(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewInitialToken(t))
	return nil
}
