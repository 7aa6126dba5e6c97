package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-jose/go-jose/v3"
	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

// The form offers every grant type, authentication method and assertion
// algorithm the server supports: it covers every client field, so nothing
// needs the JSON API.
var (
	formGrantTypes  = storage.SupportedGrantTypes
	formAuthMethods = storage.SupportedAuthMethods
	formSigningAlgs = storage.SupportedAuthSigningAlgs
	formIDTokenAlgs = storage.SupportedIDTokenSigningAlgs
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
	SigningAlgs []string
	IDTokenAlgs []string
	Redirects   string
	ScopeText   string
	Audience    string
	Contacts    string
	CORSOrigins string
	JWKS        string
	// Lifespans in Go duration syntax, "" for the server default.
	AccessLifespan, RefreshLifespan, IDLifespan string
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

// clientNew prefills the form with the defaults every other way of
// creating a client gets (storage.Client.Normalize).
func (c *Console) clientNew(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var defaults storage.Client
	admin.ClientInput{}.ApplyTo(&defaults)
	in := defaults.Spec()
	c.renderClientForm(w, rc, http.StatusOK, clientForm(true, "", 0, in), nil)
}

func clientForm(isNew bool, id string, version int64, in admin.ClientInput) clientFormData {
	d := clientFormData{
		New: isNew, ID: id, Version: version, In: in,
		GrantTypes: formGrantTypes, AuthMethods: formAuthMethods, SigningAlgs: formSigningAlgs, IDTokenAlgs: formIDTokenAlgs,
		Redirects: strings.Join(in.RedirectURIs, "\n"), ScopeText: strings.Join(in.Scopes, " "),
		Audience: strings.Join(in.Audience, "\n"), Contacts: strings.Join(in.Contacts, "\n"),
		CORSOrigins:    strings.Join(in.AllowedCORSOrigins, "\n"),
		AccessLifespan: lifespanText(in.AccessTokenLifespan), RefreshLifespan: lifespanText(in.RefreshTokenLifespan),
		IDLifespan: lifespanText(in.IDTokenLifespan),
	}
	if in.JWKS != nil {
		if b, err := json.MarshalIndent(in.JWKS, "", "  "); err == nil {
			d.JWKS = string(b)
		}
	}
	return d
}

func lifespanText(d storage.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
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

// readClientForm replaces in with the form, which shows every client
// field. It returns the fields that could not be read (a duration, the
// JWKS); the Service validates the rest.
func readClientForm(f url.Values, in *admin.ClientInput) []storage.FieldProblem {
	var problems []storage.FieldProblem
	in.Name = strings.TrimSpace(f.Get("name"))
	in.RedirectURIs = lines(f.Get("redirect_uris"))
	in.GrantTypes = nil
	for _, g := range formGrantTypes {
		if f.Get("grant_"+g) != "" {
			in.GrantTypes = append(in.GrantTypes, g)
		}
	}
	// response_types follow the grants: "code" exactly when the
	// authorization code grant is allowed.
	in.ResponseTypes = nil
	if slices.Contains(in.GrantTypes, "authorization_code") {
		in.ResponseTypes = []string{"code"}
	}
	in.Scopes = strings.Fields(f.Get("scope"))
	in.Audience = strings.Fields(f.Get("audience"))
	in.TokenEndpointAuthMethod = f.Get("token_endpoint_auth_method")
	in.TokenEndpointAuthSigningAlg = f.Get("token_endpoint_auth_signing_alg")
	in.RequestObjectSigningAlg = strings.TrimSpace(f.Get("request_object_signing_alg"))
	in.IDTokenSignedResponseAlg = f.Get("id_token_signed_response_alg")
	in.ApplicationType = f.Get("application_type")
	in.LogoURI = strings.TrimSpace(f.Get("logo_uri"))
	in.ClientURI = strings.TrimSpace(f.Get("client_uri"))
	in.Contacts = lines(f.Get("contacts"))
	in.SkipConsent = f.Get("skip_consent") != ""
	in.PKCEOptional = f.Get("pkce_optional") != ""
	in.AllowedCORSOrigins = lines(f.Get("allowed_cors_origins"))
	in.DPoPBoundAccessTokens = f.Get("dpop_bound_access_tokens") != ""
	in.BackchannelLogoutURI = strings.TrimSpace(f.Get("backchannel_logout_uri"))
	in.BackchannelLogoutSessionRequired = f.Get("backchannel_logout_session_required") != ""
	in.JWKS = nil
	if raw := strings.TrimSpace(f.Get("jwks")); raw != "" {
		var ks jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(raw), &ks); err != nil {
			problems = append(problems, storage.FieldProblem{Field: "jwks", Problem: `must be a JSON Web Key Set: {"keys": [...]}`})
		} else {
			in.JWKS = &ks
		}
	}
	for _, l := range []struct {
		field string
		dst   *storage.Duration
	}{
		{"access_token_lifespan", &in.AccessTokenLifespan},
		{"refresh_token_lifespan", &in.RefreshTokenLifespan},
		{"id_token_lifespan", &in.IDTokenLifespan},
	} {
		if err := l.dst.UnmarshalText([]byte(f.Get(l.field))); err != nil {
			problems = append(problems, storage.FieldProblem{Field: l.field, Problem: err.Error()})
		}
	}
	return problems
}

// lines splits a textarea into its non-empty trimmed lines.
func lines(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if v := strings.TrimSpace(line); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (c *Console) clientCreate(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	var in admin.ClientInput
	problems := readClientForm(r.PostForm, &in)
	in.ID = strings.TrimSpace(r.PostForm.Get("client_id"))
	if len(problems) > 0 {
		c.renderClientForm(w, rc, http.StatusBadRequest, clientForm(true, in.ID, 0, in), problems)
		return
	}
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
	c.renderClientForm(w, rc, http.StatusOK, clientForm(false, cl.ID, cl.Version, cl.Spec()), nil)
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
	in := cl.Spec()
	problems := readClientForm(r.PostForm, &in)
	in.ID = ""
	if len(problems) > 0 {
		c.renderClientForm(w, rc, http.StatusBadRequest, clientForm(false, id, version, in), problems)
		return
	}
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
