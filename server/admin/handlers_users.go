package admin

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/storage"
)

var userReadOnly = []string{
	"id", "password_hash", "disabled", "created_at", "updated_at", "version", "totp_secret", "totp_enrolled",
}

type userRequest struct {
	Username    string   `json:"username"`
	Email       string   `json:"email"`
	Password    string   `json:"password"`
	AdminScopes []string `json:"admin_scopes"`
}

type userView struct {
	ID           string     `json:"id"`
	Username     string     `json:"username"`
	Email        string     `json:"email,omitempty"`
	Disabled     bool       `json:"disabled"`
	AdminScopes  []string   `json:"admin_scopes"`
	TOTPEnrolled bool       `json:"totp_enrolled"`
	CreatedAt    *time.Time `json:"created_at,omitempty"`
	UpdatedAt    *time.Time `json:"updated_at,omitempty"`
	Version      int64      `json:"version"`
	// Password is present only when the server generated it.
	Password string `json:"password,omitempty"`
}

func viewUser(u *storage.User) userView {
	return userView{
		ID: u.ID, Username: u.Username, Email: u.Email, Disabled: u.Disabled,
		AdminScopes: nonNilSlice(u.AdminScopes), TOTPEnrolled: TOTPEnrolled(u),
		CreatedAt: ts(u.CreatedAt), UpdatedAt: ts(u.UpdatedAt), Version: u.Version,
	}
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, _ Actor) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	us, err := a.svc.ListUsers(r.Context(), opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newPage(us, opts.Limit, viewUser, func(u *storage.User) string { return u.ID }))
	return nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, act Actor) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var req userRequest
	if err := decodeStrict(body, &req, "invalid_request", userReadOnly); err != nil {
		return err
	}
	u, password, err := a.svc.CreateUser(r.Context(), act, UserInput(req))
	if err != nil {
		return err
	}
	v := viewUser(u)
	v.Password = password
	w.Header().Set("Location", Prefix+"/users/"+u.ID)
	w.Header().Set("ETag", etag(u.Version))
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, _ Actor) error {
	u, err := a.svc.GetUser(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

type disableUserResponse struct {
	User userView `json:"user"`
	Containment
}

func (a *API) disableUser(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	u, n, err := a.svc.DisableUser(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, disableUserResponse{User: viewUser(u), Containment: n})
	return nil
}

func (a *API) enableUser(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	u, err := a.svc.EnableUser(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

func (a *API) resetPassword(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	u, password, err := a.svc.ResetPassword(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	v := viewUser(u)
	v.Password = password
	w.Header().Set("ETag", etag(u.Version))
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) resetTOTP(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	u, err := a.svc.ResetTOTP(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

type consentView struct {
	Subject   string     `json:"subject"`
	ClientID  string     `json:"client_id"`
	Scopes    []string   `json:"scopes"`
	GrantedAt *time.Time `json:"granted_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func (a *API) listConsents(w http.ResponseWriter, r *http.Request, _ Actor) error {
	cs, err := a.svc.ListConsents(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	out := page[consentView]{Items: make([]consentView, 0, len(cs))}
	for _, c := range cs {
		out.Items = append(out.Items, consentView{
			Subject: c.Subject, ClientID: c.ClientID, Scopes: nonNilSlice(c.Scopes),
			GrantedAt: ts(c.GrantedAt), ExpiresAt: ts(c.ExpiresAt),
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type revokeConsentResponse struct {
	TokensRevoked int64 `json:"tokens_revoked"`
}

func (a *API) revokeConsent(w http.ResponseWriter, r *http.Request, act Actor) error {
	v := mux.Vars(r)
	n, err := a.svc.RevokeConsent(r.Context(), act, v["id"], v["client_id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, revokeConsentResponse{TokensRevoked: n})
	return nil
}
