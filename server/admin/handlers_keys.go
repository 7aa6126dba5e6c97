package admin

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/storage"
)

var apiKeyReadOnly = []string{
	"id", "hash", "status", "created_by", "created_at", "last_used_at", "revoked_at", "rotate_at",
	"replaces_id", "replaced_by_id", "version", "token", "secret",
}

type apiKeyRequest struct {
	Name      string   `json:"name"`
	OwnerType string   `json:"owner_type"`
	OwnerID   string   `json:"owner_id"`
	Scopes    []string `json:"scopes"`
	// Periods are Go durations ("2160h"); a number is read as seconds
	// for compatibility with the API's first version.
	ExpiresIn      storage.Duration `json:"expires_in"`
	RotationPeriod storage.Duration `json:"rotation_period"`
	GracePeriod    storage.Duration `json:"grace_period"`
}

// apiKeyDurations are decoded one by one first, so a bad value is
// reported under its own name.
var apiKeyDurations = []string{"expires_in", "rotation_period", "grace_period"}

type apiKeyView struct {
	ID             string           `json:"id"`
	Name           string           `json:"name"`
	OwnerType      string           `json:"owner_type"`
	OwnerID        string           `json:"owner_id"`
	Scopes         []string         `json:"scopes"`
	Status         string           `json:"status"`
	CreatedBy      string           `json:"created_by"`
	CreatedAt      *time.Time       `json:"created_at,omitempty"`
	ExpiresAt      *time.Time       `json:"expires_at,omitempty"`
	LastUsedAt     *time.Time       `json:"last_used_at,omitempty"`
	RevokedAt      *time.Time       `json:"revoked_at,omitempty"`
	RotateAt       *time.Time       `json:"rotate_at,omitempty"`
	RotationPeriod storage.Duration `json:"rotation_period"`
	GracePeriod    storage.Duration `json:"grace_period"`
	ReplacesID     string           `json:"replaces_id,omitempty"`
	ReplacedByID   string           `json:"replaced_by_id,omitempty"`
	Version        int64            `json:"version"`
	// Token is present once, when the key is created or rotated.
	Token string `json:"token,omitempty"`
}

func viewAPIKey(k *storage.APIKey) apiKeyView {
	return apiKeyView{
		ID: k.ID, Name: k.Name, OwnerType: k.OwnerType, OwnerID: k.OwnerID, Scopes: nonNilSlice(k.Scopes),
		Status: string(k.Status), CreatedBy: k.CreatedBy, CreatedAt: ts(k.CreatedAt), ExpiresAt: ts(k.ExpiresAt),
		LastUsedAt: ts(k.LastUsedAt), RevokedAt: ts(k.RevokedAt), RotateAt: ts(k.RotateAt),
		RotationPeriod: storage.Duration(k.RotationPeriod), GracePeriod: storage.Duration(k.GracePeriod),
		ReplacesID: k.ReplacesID, ReplacedByID: k.ReplacedByID, Version: k.Version,
	}
}

func (a *API) listAPIKeys(w http.ResponseWriter, r *http.Request, _ Actor) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	ks, err := a.svc.ListAPIKeys(r.Context(), opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newPage(ks, opts.Limit, viewAPIKey, func(k *storage.APIKey) string { return k.ID }))
	return nil
}

func (a *API) createAPIKey(w http.ResponseWriter, r *http.Request, act Actor) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if err := checkDurations(body, apiKeyDurations, "invalid_request"); err != nil {
		return err
	}
	var req apiKeyRequest
	if err := decodeStrict(body, &req, "invalid_request", apiKeyReadOnly); err != nil {
		return err
	}
	var problems []storage.FieldProblem
	for _, f := range []struct {
		name string
		d    storage.Duration
	}{{"expires_in", req.ExpiresIn}, {"rotation_period", req.RotationPeriod}, {"grace_period", req.GracePeriod}} {
		if f.d < 0 || time.Duration(f.d) > storage.MaxLifespan {
			problems = append(problems, storage.FieldProblem{Field: f.name, Problem: "must be between 0s and " + storage.MaxLifespan.String()})
		}
	}
	if len(problems) > 0 {
		return invalid("invalid_request", "the API key is invalid", problems...)
	}
	in := APIKeyInput{
		Name: req.Name, OwnerType: req.OwnerType, OwnerID: req.OwnerID, Scopes: req.Scopes,
		ExpiresIn: time.Duration(req.ExpiresIn), RotationPeriod: time.Duration(req.RotationPeriod), GracePeriod: time.Duration(req.GracePeriod),
	}
	tok, k, err := a.svc.CreateAPIKey(r.Context(), act, in)
	if err != nil {
		return err
	}
	v := viewAPIKey(k)
	v.Token = tok
	w.Header().Set("Location", Prefix+"/apikeys/"+k.ID)
	w.Header().Set("ETag", etag(k.Version))
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (a *API) writeAPIKey(w http.ResponseWriter, r *http.Request, id string) error {
	k, err := a.svc.GetAPIKey(r.Context(), id)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(k.Version))
	writeJSON(w, http.StatusOK, viewAPIKey(k))
	return nil
}

func (a *API) getAPIKey(w http.ResponseWriter, r *http.Request, _ Actor) error {
	return a.writeAPIKey(w, r, mux.Vars(r)["id"])
}

// selfID is the id of the key that authenticated the request.
func (a *API) selfID(r *http.Request) (string, error) {
	p, ok := a.principal(r.Context())
	if !ok || p == nil || p.KeyID == "" {
		return "", errUnauthenticated
	}
	return p.KeyID, nil
}

func (a *API) getSelfAPIKey(w http.ResponseWriter, r *http.Request, _ Actor) error {
	id, err := a.selfID(r)
	if err != nil {
		return err
	}
	return a.writeAPIKey(w, r, id)
}

func (a *API) rotateAPIKey(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	tok, k, err := a.svc.RotateAPIKey(r.Context(), act, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	v := viewAPIKey(k)
	v.Token = tok
	w.Header().Set("ETag", etag(k.Version))
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) revokeByID(w http.ResponseWriter, r *http.Request, act Actor, id string) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	if err := a.svc.RevokeAPIKey(r.Context(), act, id); err != nil {
		return err
	}
	return a.writeAPIKey(w, r, id)
}

func (a *API) revokeAPIKey(w http.ResponseWriter, r *http.Request, act Actor) error {
	return a.revokeByID(w, r, act, mux.Vars(r)["id"])
}

func (a *API) revokeSelfAPIKey(w http.ResponseWriter, r *http.Request, act Actor) error {
	id, err := a.selfID(r)
	if err != nil {
		return err
	}
	return a.revokeByID(w, r, act, id)
}

type signingKeyView struct {
	KID         string     `json:"kid"`
	Alg         string     `json:"alg"`
	State       string     `json:"state"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	ActivateAt  *time.Time `json:"activate_at,omitempty"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	DeleteAfter *time.Time `json:"delete_after,omitempty"`
}

func viewSigningKey(k *storage.SigningKey) signingKeyView {
	return signingKeyView{
		KID: k.KID, Alg: k.Algorithm, State: string(k.State), CreatedAt: ts(k.CreatedAt),
		ActivateAt: ts(k.ActivateAt), ActivatedAt: ts(k.ActivatedAt), RetiredAt: ts(k.RetiredAt),
		RevokedAt: ts(k.RevokedAt), DeleteAfter: ts(k.DeleteAfter),
	}
}

func (a *API) writeSigningKeys(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.svc.ListSigningKeys(r.Context())
	if err != nil {
		return err
	}
	out := page[signingKeyView]{Items: make([]signingKeyView, 0, len(ks))}
	for _, k := range ks {
		out.Items = append(out.Items, viewSigningKey(k))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listSigningKeys(w http.ResponseWriter, r *http.Request, _ Actor) error {
	return a.writeSigningKeys(w, r)
}

type rotateKeyRequest struct {
	Alg string `json:"alg"`
}

func (a *API) rotateSigningKey(w http.ResponseWriter, r *http.Request, act Actor) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var req rotateKeyRequest
	if err := decodeStrict(body, &req, "invalid_request", nil); err != nil {
		return err
	}
	if err := a.svc.RotateSigningKey(r.Context(), act, req.Alg); err != nil {
		return err
	}
	return a.writeSigningKeys(w, r)
}

func (a *API) revokeSigningKey(w http.ResponseWriter, r *http.Request, act Actor) error {
	if err := requireEmpty(r); err != nil {
		return err
	}
	if err := a.svc.RevokeSigningKey(r.Context(), act, mux.Vars(r)["kid"]); err != nil {
		return err
	}
	return a.writeSigningKeys(w, r)
}

type auditPage struct {
	Items []*storage.AuditEvent `json:"items"`
	// NextBeforeID, when set, is the ?before_id= of the next (older) page.
	NextBeforeID int64 `json:"next_before_id,omitempty"`
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request, _ Actor) error {
	q := r.URL.Query()
	f := storage.AuditFilter{Actor: q.Get("actor"), Event: q.Get("event"), ClientID: q.Get("client_id")}
	var problems []storage.FieldProblem
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if s := q.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				problems = append(problems, storage.FieldProblem{Field: name, Problem: "must be an RFC 3339 time"})
			}
			*dst = t
		}
	}
	if s := q.Get("before_id"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			problems = append(problems, storage.FieldProblem{Field: "before_id", Problem: "must be a positive integer"})
		}
		f.BeforeID = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			problems = append(problems, storage.FieldProblem{Field: "limit", Problem: "must be an integer from 1 to " + strconv.Itoa(MaxPageSize)})
		}
		f.Limit = n
	}
	if len(problems) > 0 {
		return invalid("invalid_request", "bad query parameter", problems...)
	}
	evs, err := a.svc.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []*storage.AuditEvent{}
	}
	out := auditPage{Items: evs}
	if len(evs) > 0 && len(evs) == clampLimit(f.Limit) {
		out.NextBeforeID = evs[len(evs)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listBlocks(w http.ResponseWriter, r *http.Request, _ Actor) error {
	bs, err := a.svc.ListBlocks(r.Context())
	if err != nil {
		return err
	}
	if bs == nil {
		bs = []*storage.Block{}
	}
	writeJSON(w, http.StatusOK, page[*storage.Block]{Items: bs})
	return nil
}

func (a *API) liftBlock(w http.ResponseWriter, r *http.Request, act Actor) error {
	v := mux.Vars(r)
	if err := a.svc.LiftBlock(r.Context(), act, v["kind"], v["value"]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
