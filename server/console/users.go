package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

type userListData struct {
	Users []*storage.User
	Query string
	Next  string
}

type userFormData struct {
	// Edit is an existing user's form (ID, Version); no password there.
	Edit            bool
	ID              string
	Version         int64
	Username, Email string
	Scopes          []string
	AdminScopes     []string
	MinPassword     int
}

// readUserForm reads the fields the new and edit forms share.
func readUserForm(f url.Values) userFormData {
	d := userFormData{Username: strings.TrimSpace(f.Get("username")), Email: strings.TrimSpace(f.Get("email")), AdminScopes: adminScopes(), MinPassword: admin.MinPasswordLength}
	for _, sc := range d.AdminScopes {
		if f.Get("scope_"+sc) != "" {
			d.Scopes = append(d.Scopes, sc)
		}
	}
	return d
}

// adminScopes are the scopes a user may hold for the console.
func adminScopes() []string {
	var out []string
	for _, s := range apikeys.AllScopes {
		if strings.HasPrefix(s, "admin:") {
			out = append(out, s)
		}
	}
	return out
}

func (c *Console) userList(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	const page = 50
	us, err := c.cfg.Service.ListUsers(r.Context(), storage.ListOptions{After: r.URL.Query().Get("after"), Limit: page + 1, NameContains: q})
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	d := userListData{Users: us, Query: q}
	if len(us) > page {
		d.Users = us[:page]
		d.Next = us[page-1].ID
	}
	v := rc.view("Users", "users", d)
	v.Flash = map[string]string{
		"enabled": "The user is enabled again.",
		"updated": "Changes saved.",
	}[r.URL.Query().Get("m")]
	c.render(w, http.StatusOK, "users", v)
}

func (c *Console) userNew(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	c.render(w, http.StatusOK, "user_form", rc.view("New user", "users", userFormData{AdminScopes: adminScopes(), MinPassword: admin.MinPasswordLength}))
}

func (c *Console) userCreate(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	f := r.PostForm
	d := readUserForm(f)
	u, password, err := c.cfg.Service.CreateUser(r.Context(), rc.actor, admin.UserInput{
		Username: d.Username, Email: d.Email, Password: f.Get("password"), AdminScopes: d.Scopes,
	})
	if p, ok := invalidProblems(err); ok {
		v := rc.view("New user", "users", d)
		v.Problems, v.Error = p, "The user could not be created. Fix the fields below."
		c.render(w, http.StatusBadRequest, "user_form", v)
		return
	}
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	if password == "" {
		http.Redirect(w, r, Prefix+"/users", http.StatusSeeOther)
		return
	}
	c.showSecret(w, rc, "users", secretData{
		Kind: "password", Label: "Generated password", Value: password, Back: "Back to users", BackTo: Prefix + "/users",
		Details: []kv{{"Username", u.Username}, {"User ID", u.ID}},
	})
}

func (c *Console) confirmUser(w http.ResponseWriter, r *http.Request, rc *reqCtx, title, verb, suffix, msg string) {
	u, err := c.cfg.Service.GetUser(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.render(w, http.StatusOK, "confirm", rc.view(title, "users", confirmData{
		Action: Prefix + "/users/" + url.PathEscape(u.ID) + "/" + suffix, Verb: verb,
		Message: msg, Object: u.Username + " (" + u.ID + ")", Cancel: Prefix + "/users", Danger: true,
	}))
}

func (c *Console) userDisableConfirm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	c.confirmUser(w, r, rc, "Disable user?", "Disable user", "disable",
		"The user is signed out everywhere (public login and console) and every token issued to them is revoked now.")
}

func (c *Console) userDisable(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	u, n, err := c.cfg.Service.DisableUser(r.Context(), rc.actor, mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.render(w, http.StatusOK, "done", rc.view("User disabled", "users", doneData{
		Message: "The user is disabled and signed out everywhere.",
		Facts: []kv{{"User", u.Username}, {"Sessions ended", strconv.FormatInt(n.LoginSessions, 10)}, {"API keys revoked", strconv.FormatInt(n.APIKeys, 10)},
			{"Tokens revoked", strconv.FormatInt(n.Tokens, 10)}},
		Next: Prefix + "/users", NextLabel: "Back to users",
	}))
}

func (c *Console) userEnable(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	if _, err := c.cfg.Service.EnableUser(r.Context(), rc.actor, mux.Vars(r)["id"]); err != nil {
		c.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, Prefix+"/users?m=enabled", http.StatusSeeOther)
}

func (c *Console) userResetConfirm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	c.confirmUser(w, r, rc, "Reset password?", "Reset password", "password",
		"A new password is generated and shown once; the old one stops working and the user is signed out everywhere.")
}

func (c *Console) userReset(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	u, password, err := c.cfg.Service.ResetPassword(r.Context(), rc.actor, mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.showSecret(w, rc, "users", secretData{
		Kind: "password", Label: "New password", Value: password, Back: "Back to users", BackTo: Prefix + "/users",
		Details: []kv{{"Username", u.Username}, {"User ID", u.ID}},
	})
}

func (c *Console) userTOTPResetConfirm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	c.confirmUser(w, r, rc, "Reset two-factor?", "Reset two-factor", "totp/reset",
		"The user's authenticator app stops being asked for: the next sign-in needs the password only, and the user can enrol a new device on their Account page. The user is signed out everywhere now.")
}

// userTOTPReset removes another user's second factor (lost phone). The
// Service refuses it unless the signed-in user holds every admin scope of
// the target, and ends the target's sessions.
func (c *Console) userTOTPReset(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	u, err := c.cfg.Service.ResetTOTP(r.Context(), rc.actor, mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.render(w, http.StatusOK, "done", rc.view("Two-factor reset", "users", doneData{
		Message: "The second factor is removed. The user signs in with the password only until they enrol a new device.",
		Facts:   []kv{{"User", u.Username}, {"User ID", u.ID}},
		Next:    Prefix + "/users", NextLabel: "Back to users",
	}))
}

func (c *Console) userSignOutConfirm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	msg := "Every login session of the user ends, in this console and at the sign-in pages, and every application they signed in to is told by back-channel logout. Tokens already issued stay valid until they expire; disable the user to revoke them too."
	if mux.Vars(r)["id"] == rc.user.ID {
		msg += " This is your own account: you are signed out here too."
	}
	c.confirmUser(w, r, rc, "Sign out everywhere?", "Sign out everywhere", "sign-out", msg)
}

// userSignOut signs the user out everywhere (admin.Service.RevokeSessions,
// as DELETE /admin/v1/users/{id}/sessions): it takes power away, so it
// needs admin:users but not the user's scopes. Signing oneself out ends
// this console session too, so that answer is the sign-in page.
func (c *Console) userSignOut(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id := mux.Vars(r)["id"]
	n, err := c.cfg.Service.RevokeSessions(r.Context(), rc.actor, id)
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	if id == rc.user.ID {
		c.toLogin(w, r, "everywhere")
		return
	}
	c.render(w, http.StatusOK, "done", rc.view("Signed out everywhere", "users", doneData{
		Message: "The user is signed out everywhere. Applications that support back-channel logout are told in the background.",
		Facts: []kv{{"User ID", id}, {"Sessions ended", strconv.FormatInt(n.LoginSessions, 10)},
			{"Back-channel logouts queued", strconv.FormatInt(n.Logouts, 10)}},
		Next: Prefix + "/users", NextLabel: "Back to users",
	}))
}

func (c *Console) userEdit(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	u, err := c.cfg.Service.GetUser(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.render(w, http.StatusOK, "user_form", rc.view("Edit user", "users", userFormData{
		Edit: true, ID: u.ID, Version: u.Version, Username: u.Username, Email: u.Email,
		Scopes: u.AdminScopes, AdminScopes: adminScopes(), MinPassword: admin.MinPasswordLength,
	}))
}

// userUpdate saves the username, email and admin scopes. The Service
// refuses a version that is no longer current, scopes the signed-in user
// does not hold, and changes to their own scopes.
func (c *Console) userUpdate(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id := mux.Vars(r)["id"]
	version, err := strconv.ParseInt(r.PostForm.Get("version"), 10, 64)
	if err != nil {
		c.fail(w, r, rc, storage.ErrPreconditionFailed)
		return
	}
	d := readUserForm(r.PostForm)
	d.Edit, d.ID, d.Version = true, id, version
	_, err = c.cfg.Service.UpdateUser(r.Context(), rc.actor, id, admin.UserUpdate{Username: d.Username, Email: d.Email, AdminScopes: d.Scopes}, version)
	if p, ok := invalidProblems(err); ok {
		v := rc.view("Edit user", "users", d)
		v.Problems, v.Error = p, "The user could not be saved. Fix the fields below."
		c.render(w, http.StatusBadRequest, "user_form", v)
		return
	}
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, Prefix+"/users?m=updated", http.StatusSeeOther)
}

func (c *Console) userDeleteConfirm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	c.confirmUser(w, r, rc, "Delete user?", "Delete user", "delete",
		"The user, their consents and sessions are deleted for good, every token issued to them is revoked and the API keys they own are revoked. This cannot be undone; disabling can.")
}

func (c *Console) userDelete(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id := mux.Vars(r)["id"]
	n, err := c.cfg.Service.DeleteUser(r.Context(), rc.actor, id)
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.render(w, http.StatusOK, "done", rc.view("User deleted", "users", doneData{
		Message: "The user is deleted.",
		Facts: []kv{{"User ID", id}, {"Sessions ended", strconv.FormatInt(n.LoginSessions, 10)}, {"API keys revoked", strconv.FormatInt(n.APIKeys, 10)},
			{"Tokens revoked", strconv.FormatInt(n.Tokens, 10)}},
		Next: Prefix + "/users", NextLabel: "Back to users",
	}))
}

// accountPassword changes the signed-in user's own password, given the
// current one (admin.Service.ChangeOwnPassword).
func (c *Console) accountPassword(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	f := r.PostForm
	_, err := c.cfg.Service.ChangeOwnPassword(r.Context(), rc.actor, rc.user.ID, f.Get("current_password"), f.Get("new_password"))
	if errors.Is(err, admin.ErrWrongPassword) {
		c.renderAccount(w, r, rc, http.StatusForbidden, "", "The current password is wrong; your password is unchanged.")
		return
	}
	if p, ok := invalidProblems(err); ok {
		msg := "The new password is not acceptable."
		for _, pr := range p {
			if pr.Field == "password" || pr.Field == "new_password" {
				msg = "The new password " + pr.Problem + "."
			}
		}
		c.renderAccount(w, r, rc, http.StatusBadRequest, "", msg)
		return
	}
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.renderAccount(w, r, rc, http.StatusOK, "Your password is changed.", "")
}
