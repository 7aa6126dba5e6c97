package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

// Grant types and auth methods the client form offers (private_key_jwt
// needs a JWKS, which the JSON API takes).
var (
	formGrantTypes  = []string{"authorization_code", "refresh_token", "client_credentials"}
	formAuthMethods = []string{storage.AuthMethodSecretBasic, storage.AuthMethodSecretPost, storage.AuthMethodNone}
)

type clientListData struct {
	Clients []*storage.Client
	Query   string
	// Next is the id after which the next page starts ("" = last page).
	Next string
}

type clientFormData struct {
	New         bool
	ID          string
	Version     int64
	In          admin.ClientInput
	GrantTypes  []string
	AuthMethods []string
	Redirects   string
	ScopeText   string
}

// secretData is a page showing a credential once.
type secretData struct {
	Kind    string // "client secret", "API key", "password"
	Label   string
	Value   string
	Back    string
	BackTo  string
	Details []kv
}

type kv struct{ K, V string }

// confirmData is the confirmation step of a destructive action: a page,
// not script, so it works without JavaScript.
type confirmData struct {
	Action  string
	Verb    string
	Message string
	Object  string
	Cancel  string
	Danger  bool
}

func (c *Console) clientList(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	after := r.URL.Query().Get("after")
	const page = 50
	cs, err := c.cfg.Service.ListClients(r.Context(), storage.ListOptions{After: after, Limit: page + 1, NameContains: q})
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	d := clientListData{Clients: cs, Query: q}
	if len(cs) > page {
		d.Clients = cs[:page]
		d.Next = cs[page-1].ID
	}
	v := rc.view("Clients", "clients", d)
	v.Flash = flashes[r.URL.Query().Get("m")]
	c.render(w, http.StatusOK, "clients", v)
}

func (c *Console) clientShow(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	cl, err := c.cfg.Service.GetClient(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	v := rc.view(displayName(cl), "clients", cl)
	v.Flash = flashes[r.URL.Query().Get("m")]
	c.render(w, http.StatusOK, "client", v)
}

var flashes = map[string]string{
	"updated": "Changes saved.",
	"enabled": "The client is enabled again. Tokens revoked when it was disabled stay revoked.",
	"deleted": "The client and every token issued to it were deleted.",
}

func displayName(cl *storage.Client) string {
	if cl.Name != "" {
		return cl.Name
	}
	return cl.ID
}

func (c *Console) clientNew(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	in := admin.ClientInput{GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid"},
		TokenEndpointAuthMethod: storage.AuthMethodSecretBasic, ApplicationType: storage.AppTypeWeb}
	c.renderClientForm(w, rc, http.StatusOK, clientForm(true, "", 0, in), nil)
}

func clientForm(isNew bool, id string, version int64, in admin.ClientInput) clientFormData {
	methods := formAuthMethods
	if in.TokenEndpointAuthMethod != "" && !slices.Contains(methods, in.TokenEndpointAuthMethod) {
		// A method the form cannot set up (private_key_jwt) is still
		// offered, selected, for a client that uses it: otherwise the
		// browser submits the first option and an edit of the name would
		// switch the client to a client secret.
		methods = append(slices.Clone(methods), in.TokenEndpointAuthMethod)
	}
	return clientFormData{
		New: isNew, ID: id, Version: version, In: in,
		GrantTypes: formGrantTypes, AuthMethods: methods,
		Redirects: strings.Join(in.RedirectURIs, "\n"), ScopeText: strings.Join(in.Scopes, " "),
	}
}

func (c *Console) renderClientForm(w http.ResponseWriter, rc *reqCtx, status int, d clientFormData, problems []storage.FieldProblem) {
	title := "New client"
	if !d.New {
		title = "Edit client"
	}
	v := rc.view(title, "clients", d)
	v.Problems = problems
	if len(problems) > 0 {
		v.Error = "The client could not be saved. Fix the fields below."
	}
	c.render(w, status, "client_form", v)
}

// readClientForm copies the form onto in. Fields the form does not show
// (JWKS, lifespans, contacts…) keep their values in.
func readClientForm(f url.Values, in *admin.ClientInput) {
	in.Name = strings.TrimSpace(f.Get("name"))
	in.RedirectURIs = nil
	for _, line := range strings.Split(f.Get("redirect_uris"), "\n") {
		if u := strings.TrimSpace(line); u != "" {
			in.RedirectURIs = append(in.RedirectURIs, u)
		}
	}
	// Grants the form has no checkbox for (token exchange) are kept as
	// they are: the form cannot show them, so it must not drop them.
	var grants []string
	for _, g := range formGrantTypes {
		if f.Get("grant_"+g) != "" {
			grants = append(grants, g)
		}
	}
	for _, g := range in.GrantTypes {
		if !slices.Contains(formGrantTypes, g) {
			grants = append(grants, g)
		}
	}
	in.GrantTypes = grants
	// response_types follow the grants: "code" exactly when the
	// authorization code grant is allowed.
	in.ResponseTypes = nil
	if slices.Contains(in.GrantTypes, "authorization_code") {
		in.ResponseTypes = []string{"code"}
	}
	in.Scopes = strings.Fields(f.Get("scope"))
	in.TokenEndpointAuthMethod = f.Get("token_endpoint_auth_method")
	in.ApplicationType = f.Get("application_type")
	in.SkipConsent = f.Get("skip_consent") != ""
}

func (c *Console) clientCreate(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in admin.ClientInput
	readClientForm(r.PostForm, &in)
	in.ID = strings.TrimSpace(r.PostForm.Get("client_id"))
	cl, secret, err := c.cfg.Service.CreateClient(r.Context(), rc.actor, in)
	if p, ok := invalidProblems(err); ok {
		c.renderClientForm(w, rc, http.StatusBadRequest, clientForm(true, in.ID, 0, in), p)
		return
	}
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	if secret == "" {
		http.Redirect(w, r, Prefix+"/clients/"+url.PathEscape(cl.ID), http.StatusSeeOther)
		return
	}
	c.showSecret(w, rc, "clients", secretData{
		Kind: "client secret", Label: "Client secret", Value: secret,
		Back: "Go to the client", BackTo: Prefix + "/clients/" + url.PathEscape(cl.ID),
		Details: []kv{{"Client", displayName(cl)}, {"Client ID", cl.ID}, {"Authentication", cl.TokenEndpointAuthMethod}},
	})
}

// showSecret renders a credential on the response to the POST that made
// it: there is no URL to fetch it again, and the page is no-store.
func (c *Console) showSecret(w http.ResponseWriter, rc *reqCtx, nav string, d secretData) {
	c.render(w, http.StatusOK, "secret", rc.view("Copy the new "+d.Kind, nav, d))
}

func (c *Console) clientEdit(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	cl, err := c.cfg.Service.GetClient(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.renderClientForm(w, rc, http.StatusOK, clientForm(false, cl.ID, cl.Version, admin.InputFromClient(cl)), nil)
}

func (c *Console) clientUpdate(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	cl, err := c.cfg.Service.GetClient(ctx, id)
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	version, err := strconv.ParseInt(r.PostForm.Get("version"), 10, 64)
	if err != nil {
		c.fail(w, r, rc, storage.ErrPreconditionFailed)
		return
	}
	in := admin.InputFromClient(cl)
	readClientForm(r.PostForm, &in)
	in.ID = ""
	updated, secret, err := c.cfg.Service.UpdateClient(ctx, rc.actor, id, in, version)
	if p, ok := invalidProblems(err); ok {
		c.renderClientForm(w, rc, http.StatusBadRequest, clientForm(false, id, version, in), p)
		return
	}
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	if secret != "" {
		c.showSecret(w, rc, "clients", secretData{
			Kind: "client secret", Label: "Client secret", Value: secret,
			Back: "Go to the client", BackTo: Prefix + "/clients/" + url.PathEscape(id),
			Details: []kv{{"Client", displayName(updated)}, {"Client ID", id}, {"Authentication", updated.TokenEndpointAuthMethod}},
		})
		return
	}
	http.Redirect(w, r, Prefix+"/clients/"+url.PathEscape(id)+"?m=updated", http.StatusSeeOther)
}

func (c *Console) clientRotate(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id := mux.Vars(r)["id"]
	cl, secret, err := c.cfg.Service.RotateClientSecret(r.Context(), rc.actor, id)
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.showSecret(w, rc, "clients", secretData{
		Kind: "client secret", Label: "New client secret", Value: secret,
		Back: "Go to the client", BackTo: Prefix + "/clients/" + url.PathEscape(id),
		Details: []kv{{"Client", displayName(cl)}, {"Client ID", id}, {"Previous secret", "keeps working for the configured overlap, then stops"}},
	})
}

func (c *Console) confirmClient(w http.ResponseWriter, r *http.Request, rc *reqCtx, verb, suffix, msg string) {
	cl, err := c.cfg.Service.GetClient(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.render(w, http.StatusOK, "confirm", rc.view(verb+" client?", "clients", confirmData{
		Action: Prefix + "/clients/" + url.PathEscape(cl.ID) + "/" + suffix, Verb: verb + " client",
		Message: msg, Object: displayName(cl) + " (" + cl.ID + ")",
		Cancel: Prefix + "/clients/" + url.PathEscape(cl.ID), Danger: true,
	}))
}

func (c *Console) clientDisableConfirm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	c.confirmClient(w, r, rc, "Disable", "disable",
		"The client will be refused at every endpoint and every access and refresh token issued to it is revoked now. You can enable it again later; revoked tokens stay revoked.")
}

func (c *Console) clientDisable(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	cl, n, err := c.cfg.Service.DisableClient(r.Context(), rc.actor, mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	c.render(w, http.StatusOK, "done", rc.view("Client disabled", "clients", doneData{
		Message: "The client is disabled and can no longer obtain tokens.",
		Facts:   []kv{{"Client", displayName(cl)}, {"Client ID", cl.ID}, {"Tokens revoked", strconv.FormatInt(n, 10)}},
		Next:    Prefix + "/clients/" + url.PathEscape(cl.ID), NextLabel: "Back to the client",
	}))
}

// doneData reports the outcome of a containment action.
type doneData struct {
	Message   string
	Facts     []kv
	Next      string
	NextLabel string
}

func (c *Console) clientEnable(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	cl, err := c.cfg.Service.EnableClient(r.Context(), rc.actor, mux.Vars(r)["id"])
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, Prefix+"/clients/"+url.PathEscape(cl.ID)+"?m=enabled", http.StatusSeeOther)
}

func (c *Console) clientDeleteConfirm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	c.confirmClient(w, r, rc, "Delete", "delete",
		"The client and every token issued to it are deleted for good. This cannot be undone.")
}

func (c *Console) clientDelete(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	if err := c.cfg.Service.DeleteClient(r.Context(), rc.actor, mux.Vars(r)["id"]); err != nil {
		c.fail(w, r, rc, err)
		return
	}
	http.Redirect(w, r, Prefix+"/clients?m=deleted", http.StatusSeeOther)
}
