package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

type apiKeyListData struct {
	Keys  []*storage.APIKey
	Query string
	Next  string
}

type apiKeyFormData struct {
	Name, OwnerType, OwnerID string
	Scopes                   []string
	AllScopes                []string
	OwnerTypes               []string
	RotationDays, GraceDays  string
	ExpiresDays              string
}

func (c *Console) apiKeyList(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	const page = 50
	ks, err := c.cfg.Service.ListAPIKeys(r.Context(), storage.ListOptions{After: r.URL.Query().Get("after"), Limit: page + 1, NameContains: q})
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	d := apiKeyListData{Keys: ks, Query: q}
	if len(ks) > page {
		d.Keys = ks[:page]
		d.Next = ks[page-1].ID
	}
	v := rc.view("API keys", "apikeys", d)
	if r.URL.Query().Get("m") == "revoked" {
		v.Flash = "The API key is revoked on every replica."
	}
	c.render(w, http.StatusOK, "apikeys", v)
}

func newAPIKeyForm() apiKeyFormData {
	return apiKeyFormData{
		OwnerType: apikeys.OwnerService, AllScopes: apikeys.AllScopes,
		OwnerTypes:   []string{apikeys.OwnerService, apikeys.OwnerClient, apikeys.OwnerUser},
		RotationDays: "90", GraceDays: "7",
	}
}

func (c *Console) apiKeyNew(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	c.render(w, http.StatusOK, "apikey_form", rc.view("New API key", "apikeys", newAPIKeyForm()))
}

// days parses a whole or fractional number of days; empty is zero.
func days(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 3650 {
		return 0, false
	}
	return time.Duration(f * float64(24*time.Hour)), true
}

func (c *Console) apiKeyCreate(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	f := r.PostForm
	d := newAPIKeyForm()
	d.Name, d.OwnerType, d.OwnerID = strings.TrimSpace(f.Get("name")), f.Get("owner_type"), strings.TrimSpace(f.Get("owner_id"))
	d.RotationDays, d.GraceDays, d.ExpiresDays = f.Get("rotation_days"), f.Get("grace_days"), f.Get("expires_days")
	for _, sc := range apikeys.AllScopes {
		if f.Get("scope_"+sc) != "" {
			d.Scopes = append(d.Scopes, sc)
		}
	}
	var problems []storage.FieldProblem
	rot, ok1 := days(d.RotationDays)
	grace, ok2 := days(d.GraceDays)
	exp, ok3 := days(d.ExpiresDays)
	if !ok1 {
		problems = append(problems, storage.FieldProblem{Field: "rotation_period", Problem: "must be a number of days"})
	}
	if !ok2 {
		problems = append(problems, storage.FieldProblem{Field: "grace_period", Problem: "must be a number of days"})
	}
	if !ok3 {
		problems = append(problems, storage.FieldProblem{Field: "expires_in", Problem: "must be a number of days"})
	}
	var (
		tok string
		k   *storage.APIKey
		err error
	)
	if len(problems) == 0 {
		tok, k, err = c.cfg.Service.CreateAPIKey(r.Context(), rc.actor, admin.APIKeyInput{
			Name: d.Name, OwnerType: d.OwnerType, OwnerID: d.OwnerID, Scopes: d.Scopes,
			ExpiresIn: exp, RotationPeriod: rot, GracePeriod: grace,
		})
		problems, _ = invalidProblems(err)
	}
	if len(problems) > 0 {
		v := rc.view("New API key", "apikeys", d)
		v.Problems, v.Error = problems, "The API key could not be created. Fix the fields below."
		c.render(w, http.StatusBadRequest, "apikey_form", v)
		return
	}
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.showSecret(w, rc, "apikeys", secretData{
		Kind: "API key", Label: "API key", Value: tok, Back: "Back to API keys", BackTo: Prefix + "/apikeys",
		Details: []kv{{"Name", k.Name}, {"Key ID", k.ID}, {"Scopes", strings.Join(k.Scopes, " ")}, {"Rotates", k.RotateAt.UTC().Format("2006-01-02 15:04 UTC")}},
	})
}

func (c *Console) apiKeyRotate(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	tok, k, err := c.cfg.Service.RotateAPIKey(r.Context(), rc.actor, mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.showSecret(w, rc, "apikeys", secretData{
		Kind: "API key", Label: "New API key", Value: tok, Back: "Back to API keys", BackTo: Prefix + "/apikeys",
		Details: []kv{{"Name", k.Name}, {"New key ID", k.ID}, {"Replaces", k.ReplacesID}, {"Scopes", strings.Join(k.Scopes, " ")}},
	})
}

func (c *Console) apiKeyRevokeConfirm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	k, err := c.cfg.Service.GetAPIKey(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.render(w, http.StatusOK, "confirm", rc.view("Revoke API key?", "apikeys", confirmData{
		Action: Prefix + "/apikeys/" + url.PathEscape(k.ID) + "/revoke", Verb: "Revoke API key",
		Message: "Every request with this key fails from now on, on every replica. This cannot be undone.",
		Object:  k.Name + " (" + k.ID + ")", Cancel: Prefix + "/apikeys", Danger: true,
	}))
}

func (c *Console) apiKeyRevoke(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	if err := c.cfg.Service.RevokeAPIKey(r.Context(), rc.actor, mux.Vars(r)["id"]); err != nil {
		c.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, Prefix+"/apikeys?m=revoked", http.StatusSeeOther)
}
