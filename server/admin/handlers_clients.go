package admin

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/storage"
)

// clientReadOnly are the server-controlled client fields; a body carrying
// one is refused by name. "disabled" is here because only the disable
// action also revokes tokens.
var clientReadOnly = []string{
	"client_secret", "client_secret_hash", "secret_hash", "rotated_secrets", "client_secret_expires_at",
	"client_id_issued_at", "created_at", "updated_at", "version", "owner", "disabled",
	"registration_access_token", "registration_client_uri",
}

// clientRequest is the RFC 7591 §2 client metadata accepted on POST and PUT.
// Lifespans are in seconds.
type clientRequest struct {
	ClientID                    string              `json:"client_id"`
	ClientName                  string              `json:"client_name"`
	RedirectURIs                []string            `json:"redirect_uris"`
	GrantTypes                  []string            `json:"grant_types"`
	ResponseTypes               []string            `json:"response_types"`
	Scope                       string              `json:"scope"`
	Audience                    []string            `json:"audience"`
	TokenEndpointAuthMethod     string              `json:"token_endpoint_auth_method"`
	TokenEndpointAuthSigningAlg string              `json:"token_endpoint_auth_signing_alg"`
	JWKS                        *jose.JSONWebKeySet `json:"jwks"`
	RequestObjectSigningAlg     string              `json:"request_object_signing_alg"`
	ApplicationType             string              `json:"application_type"`
	LogoURI                     string              `json:"logo_uri"`
	ClientURI                   string              `json:"client_uri"`
	Contacts                    []string            `json:"contacts"`
	SkipConsent                 bool                `json:"skip_consent"`
	PKCEOptional                bool                `json:"pkce_optional"`
	AccessTokenLifespan         int64               `json:"access_token_lifespan"`
	RefreshTokenLifespan        int64               `json:"refresh_token_lifespan"`
	IDTokenLifespan             int64               `json:"id_token_lifespan"`
}

func (c clientRequest) input() (ClientInput, error) {
	var d durations
	in := ClientInput{
		ID: c.ClientID, Name: c.ClientName, RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes,
		ResponseTypes: c.ResponseTypes, Scopes: strings.Fields(c.Scope), Audience: c.Audience,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, TokenEndpointAuthSigningAlg: c.TokenEndpointAuthSigningAlg,
		JWKS: c.JWKS, RequestObjectSigningAlg: c.RequestObjectSigningAlg, ApplicationType: c.ApplicationType,
		LogoURI: c.LogoURI, ClientURI: c.ClientURI, Contacts: c.Contacts,
		SkipConsent: c.SkipConsent, PKCEOptional: c.PKCEOptional,
		AccessTokenLifespan:  d.get("access_token_lifespan", c.AccessTokenLifespan),
		RefreshTokenLifespan: d.get("refresh_token_lifespan", c.RefreshTokenLifespan),
		IDTokenLifespan:      d.get("id_token_lifespan", c.IDTokenLifespan),
	}
	if len(d.problems) > 0 {
		return in, invalid("invalid_client_metadata", "the client metadata is invalid", d.problems...)
	}
	return in, nil
}

// clientView is a client as the API shows it (RFC 7591 §3.2.1 names).
type clientView struct {
	ClientID                    string              `json:"client_id"`
	ClientSecret                string              `json:"client_secret,omitempty"`
	ClientIDIssuedAt            int64               `json:"client_id_issued_at"`
	ClientSecretExpiresAt       *int64              `json:"client_secret_expires_at,omitempty"`
	ClientName                  string              `json:"client_name"`
	RedirectURIs                []string            `json:"redirect_uris"`
	GrantTypes                  []string            `json:"grant_types"`
	ResponseTypes               []string            `json:"response_types"`
	Scope                       string              `json:"scope"`
	Audience                    []string            `json:"audience"`
	TokenEndpointAuthMethod     string              `json:"token_endpoint_auth_method"`
	TokenEndpointAuthSigningAlg string              `json:"token_endpoint_auth_signing_alg,omitempty"`
	JWKS                        *jose.JSONWebKeySet `json:"jwks,omitempty"`
	RequestObjectSigningAlg     string              `json:"request_object_signing_alg,omitempty"`
	ApplicationType             string              `json:"application_type"`
	LogoURI                     string              `json:"logo_uri,omitempty"`
	ClientURI                   string              `json:"client_uri,omitempty"`
	Contacts                    []string            `json:"contacts,omitempty"`
	SkipConsent                 bool                `json:"skip_consent"`
	PKCEOptional                bool                `json:"pkce_optional"`
	AccessTokenLifespan         int64               `json:"access_token_lifespan"`
	RefreshTokenLifespan        int64               `json:"refresh_token_lifespan"`
	IDTokenLifespan             int64               `json:"id_token_lifespan"`
	Owner                       string              `json:"owner,omitempty"`
	Disabled                    bool                `json:"disabled"`
	CreatedAt                   *time.Time          `json:"created_at,omitempty"`
	UpdatedAt                   *time.Time          `json:"updated_at,omitempty"`
	Version                     int64               `json:"version"`
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func viewClient(c *storage.Client) clientView {
	v := clientView{
		ClientID: c.ID, ClientName: c.Name,
		RedirectURIs: nonNilSlice(c.RedirectURIs), GrantTypes: nonNilSlice(c.GrantTypes),
		ResponseTypes: nonNilSlice(c.ResponseTypes), Scope: strings.Join(c.Scopes, " "),
		Audience: nonNilSlice(c.Audience), TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		TokenEndpointAuthSigningAlg: c.TokenEndpointAuthSigningAlg, JWKS: c.JWKS,
		RequestObjectSigningAlg: c.RequestObjectSigningAlg, ApplicationType: c.ApplicationType,
		LogoURI: c.LogoURI, ClientURI: c.ClientURI, Contacts: c.Contacts,
		SkipConsent: c.SkipConsent, PKCEOptional: c.PKCEOptional,
		AccessTokenLifespan: seconds(c.AccessTokenLifespan), RefreshTokenLifespan: seconds(c.RefreshTokenLifespan),
		IDTokenLifespan: seconds(c.IDTokenLifespan), Owner: c.Owner, Disabled: c.Disabled,
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

func (a *API) readClient(r *http.Request, update bool) (ClientInput, error) {
	body, err := readBody(r)
	if err != nil {
		return ClientInput{}, err
	}
	ro := clientReadOnly
	if update {
		ro = append([]string{"client_id"}, ro...)
	}
	var req clientRequest
	if err := decodeStrict(body, &req, "invalid_client_metadata", ro); err != nil {
		return ClientInput{}, err
	}
	return req.input()
}

func (a *API) createClient(w http.ResponseWriter, r *http.Request, act Actor) error {
	in, err := a.readClient(r, false)
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

func (a *API) updateClient(w http.ResponseWriter, r *http.Request, act Actor) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	in, err := a.readClient(r, true)
	if err != nil {
		return err
	}
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
