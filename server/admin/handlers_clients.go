package admin

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/storage"
)

// clientServerFields are the fields the server controls on a client. A
// PUT or PATCH may carry the ones a GET returns with their current values
// (so what GET returns can be sent back); a changed value is refused by
// name. "disabled" is here because only the disable action also revokes
// tokens. The secret-related names are never returned, so never accepted.
var clientServerFields = []string{
	"client_secret", "client_secret_hash", "secret_hash", "rotated_secrets", "client_secret_expires_at",
	"client_id_issued_at", "created_at", "updated_at", "version", "owner", "disabled",
	"registration_access_token", "registration_client_uri", "registered_via",
}

// clientLifespans are decoded one by one first, so a bad value is reported
// under its own name.
var clientLifespans = []string{"access_token_lifespan", "refresh_token_lifespan", "id_token_lifespan"}

// clientView is a client as the API shows it (RFC 7591 §3.2.1 names): the
// operator-controlled storage.ClientSpec plus the server-owned fields.
type clientView struct {
	storage.ClientSpec
	ClientSecret          string     `json:"client_secret,omitempty"`
	ClientIDIssuedAt      int64      `json:"client_id_issued_at"`
	ClientSecretExpiresAt *int64     `json:"client_secret_expires_at,omitempty"`
	Owner                 string     `json:"owner,omitempty"`
	RegisteredVia         string     `json:"registered_via,omitempty"`
	Disabled              bool       `json:"disabled"`
	CreatedAt             *time.Time `json:"created_at,omitempty"`
	UpdatedAt             *time.Time `json:"updated_at,omitempty"`
	Version               int64      `json:"version"`
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func viewClient(c *storage.Client) clientView {
	spec := c.Spec()
	spec.RedirectURIs = nonNilSlice(spec.RedirectURIs)
	spec.GrantTypes = nonNilSlice(spec.GrantTypes)
	spec.ResponseTypes = nonNilSlice(spec.ResponseTypes)
	spec.Audience = nonNilSlice(spec.Audience)
	v := clientView{
		ClientSpec: spec, Owner: c.Owner, RegisteredVia: c.RegisteredVia, Disabled: c.Disabled,
		CreatedAt: ts(c.CreatedAt), UpdatedAt: ts(c.UpdatedAt), Version: c.Version,
	}
	if !c.CreatedAt.IsZero() {
		v.ClientIDIssuedAt = c.CreatedAt.Unix()
	}
	return v
}

// withSecret adds a freshly generated secret (RFC 7591: 0 = never expires).
func withSecret(v clientView, secret string) clientView {
	if secret != "" {
		var never int64
		v.ClientSecret, v.ClientSecretExpiresAt = secret, &never
	}
	return v
}

func (a *API) listClients(w http.ResponseWriter, r *http.Request, _ Actor) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	cs, err := a.svc.ListClients(r.Context(), opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newPage(cs, opts.Limit, viewClient, func(c *storage.Client) string { return c.ID }))
	return nil
}

// decodeClient decodes a client body. current is the client as GET shows
// it now (nil on create): server-owned fields equal to it are ignored,
// others refused by name.
func decodeClient(body []byte, current *clientView) (ClientInput, error) {
	const code = "invalid_client_metadata"
	var in ClientInput
	fields, err := objectFields(body, code)
	if err != nil {
		return in, err
	}
	var cur any
	if current != nil {
		cur = current
	}
	problems, err := serverOwned(fields, cur, clientServerFields)
	if err != nil {
		return in, err
	}
	problems = append(problems, durationProblems(fields, clientLifespans)...)
	if len(problems) > 0 {
		return in, invalid(code, "the client metadata is invalid", sortProblems(problems)...)
	}
	err = decodeFields(fields, &in, code)
	return in, err
}

func (a *API) createClient(w http.ResponseWriter, r *http.Request, act Actor) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, err := decodeClient(body, nil)
	if err != nil {
		return err
	}
	c, secret, err := a.svc.CreateClient(r.Context(), act, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/clients/"+c.ID)
	w.Header().Set("ETag", etag(c.Version))
	writeJSON(w, http.StatusCreated, withSecret(viewClient(c), secret))
	return nil
}

func (a *API) getClient(w http.ResponseWriter, r *http.Request, _ Actor) error {
	c, err := a.svc.GetClient(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(c.Version))
	writeJSON(w, http.StatusOK, viewClient(c))
	return nil
}

// currentClient reads the client a PUT or PATCH replaces and checks
// If-Match against it first, so a stale write is 412 before its body
// (whose updated_at and version are stale too) is looked at.
func (a *API) currentClient(r *http.Request, version int64) (clientView, error) {
	c, err := a.svc.GetClient(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return clientView{}, err
	}
	if c.Version != version {
		return clientView{}, errStale
	}
	return viewClient(c), nil
}

// updateClient is PUT: the body is the whole client as GET returns it
// (server-owned fields may be left out or sent unchanged).
func (a *API) updateClient(w http.ResponseWriter, r *http.Request, act Actor) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	cur, err := a.currentClient(r, version)
	if err != nil {
		return err
	}
	in, err := decodeClient(body, &cur)
	if err != nil {
		return err
	}
	return a.saveClient(w, r, act, in, version)
}

// patchClient is PATCH with a JSON merge patch (RFC 7396) applied to the
// client as GET shows it; the result is then what a PUT would send.
func (a *API) patchClient(w http.ResponseWriter, r *http.Request, act Actor) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	patch, err := readBodyAs(r, mediaMergePatch)
	if err != nil {
		return err
	}
	cur, err := a.currentClient(r, version)
	if err != nil {
		return err
	}
	merged, err := applyMergePatch(cur, patch, "invalid_client_metadata")
	if err != nil {
		return err
	}
	in, err := decodeClient(merged, &cur)
	if err != nil {
		return err
	}
	return a.saveClient(w, r, act, in, version)
}

func (a *API) saveClient(w http.ResponseWriter, r *http.Request, act Actor, in ClientInput, version int64) error {
	c, secret, err := a.svc.UpdateClient(r.Context(), act, mux.Vars(r)["id"], in, version)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(c.Version))
	writeJSON(w, http.StatusOK, withSecret(viewClient(c), secret))
	return nil
}

func (a *API) deleteClient(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := a.svc.DeleteClient(r.Context(), act, mux.Vars(r)["id"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) rotateClientSecret(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	c, secret, err := a.svc.RotateClientSecret(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(c.Version))
	writeJSON(w, http.StatusOK, withSecret(viewClient(c), secret))
	return nil
}

type disableClientResponse struct {
	Client        clientView `json:"client"`
	TokensRevoked int64      `json:"tokens_revoked"`
}

func (a *API) disableClient(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	c, n, err := a.svc.DisableClient(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, disableClientResponse{Client: viewClient(c), TokensRevoked: n})
	return nil
}

func (a *API) enableClient(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	c, err := a.svc.EnableClient(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(c.Version))
	writeJSON(w, http.StatusOK, viewClient(c))
	return nil
}
