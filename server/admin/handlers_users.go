package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

var userReadOnly = []string{
	"id", "password_hash", "disabled", "created_at", "updated_at", "version", "totp_secret", "totp_enrolled",
}

// userServerFields are what PUT and PATCH accept only unchanged: GET shows
// them, the server owns them. A password never appears in a GET, so it is
// refused (passwords change through /password and /users/self/password).
var userServerFields = []string{
	"id", "password", "password_hash", "disabled", "created_at", "updated_at", "version", "totp_secret", "totp_enrolled",
}

// userUpdateRequest is the body of PUT (and the result of a PATCH).
type userUpdateRequest struct {
	Username    string   `json:"username"`
	Email       string   `json:"email"`
	AdminScopes []string `json:"admin_scopes"`
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
	if q := r.URL.Query(); q.Has("username") {
		// An exact, case-insensitive match: zero or one user.
		out := page[userView]{Items: []userView{}}
		u, err := a.svc.FindUser(r.Context(), q.Get("username"))
		switch {
		case err == nil:
			out.Items = append(out.Items, viewUser(u))
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
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

// currentUser reads the user a PUT or PATCH replaces and checks If-Match
// against it first.
func (a *API) currentUser(r *http.Request, version int64) (userView, error) {
	u, err := a.svc.GetUser(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return userView{}, err
	}
	if u.Version != version {
		return userView{}, errStale
	}
	return viewUser(u), nil
}

func decodeUser(body []byte, current userView) (UserUpdate, error) {
	const code = "invalid_request"
	fields, err := objectFields(body, code)
	if err != nil {
		return UserUpdate{}, err
	}
	problems, err := serverOwned(fields, current, userServerFields)
	if err != nil {
		return UserUpdate{}, err
	}
	if len(problems) > 0 {
		return UserUpdate{}, invalid(code, "the body changes server-controlled fields", sortProblems(problems)...)
	}
	var req userUpdateRequest
	if err := decodeFields(fields, &req, code); err != nil {
		return UserUpdate{}, err
	}
	return UserUpdate(req), nil
}

// updateUser is PUT: the user as GET returns it; username, email and
// admin_scopes are replaced (an omitted email is cleared).
func (a *API) updateUser(w http.ResponseWriter, r *http.Request, act Actor) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	cur, err := a.currentUser(r, version)
	if err != nil {
		return err
	}
	in, err := decodeUser(body, cur)
	if err != nil {
		return err
	}
	return a.saveUser(w, r, act, in, version)
}

// patchUser is PATCH with a JSON merge patch (RFC 7396).
func (a *API) patchUser(w http.ResponseWriter, r *http.Request, act Actor) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	patch, err := readBodyAs(r, mediaMergePatch)
	if err != nil {
		return err
	}
	cur, err := a.currentUser(r, version)
	if err != nil {
		return err
	}
	merged, err := applyMergePatch(cur, patch, "invalid_request")
	if err != nil {
		return err
	}
	in, err := decodeUser(merged, cur)
	if err != nil {
		return err
	}
	return a.saveUser(w, r, act, in, version)
}

func (a *API) saveUser(w http.ResponseWriter, r *http.Request, act Actor, in UserUpdate, version int64) error {
	u, err := a.svc.UpdateUser(r.Context(), act, mux.Vars(r)["id"], in, version)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request, act Actor) error {
	n, err := a.svc.DeleteUser(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

type changePasswordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// changeOwnPassword lets the user who owns the calling API key change
// their password, given the current one. The Service acts as that user
// (self), which is what authorizes it; the key needs no admin scope.
func (a *API) changeOwnPassword(w http.ResponseWriter, r *http.Request, act Actor) error {
	p, ok := a.principal(r.Context())
	if !ok || p == nil {
		return errUnauthenticated
	}
	if p.OwnerType != apikeys.OwnerUser || p.OwnerID == "" {
		return errNotAUser
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var req changePasswordRequest
	if err := decodeStrict(body, &req, "invalid_request", nil); err != nil {
		return err
	}
	self := Actor{ID: "user:" + p.OwnerID, Scopes: act.Scopes}
	u, err := a.svc.ChangeOwnPassword(r.Context(), self, p.OwnerID, req.CurrentPassword, req.NewPassword)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

// revokeSessions signs the user out everywhere (login sessions end, relying
// parties get back-channel logouts).
func (a *API) revokeSessions(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	n, err := a.svc.RevokeSessions(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}
