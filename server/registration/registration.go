package registration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys/regtoken"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// Path is the registration endpoint (RFC 7591 §3); the registration client
// URI of a client is Path + "/" + its id (RFC 7592 §1).
const Path = "/oauth2/register"

// Clients is what the handler needs of server/admin's Service: the owner
// of client rules, secrets, audit and containment.
type Clients interface {
	RegisterClient(ctx context.Context, a admin.Actor, in admin.ClientInput, via string) (*storage.Client, string, error)
	UpdateClient(ctx context.Context, a admin.Actor, id string, in admin.ClientInput, ifVersion int64) (*storage.Client, string, error)
	DeleteClient(ctx context.Context, a admin.Actor, id string) error
}

// Store is the registration state plus transactions, so a token's use
// and the client it registers commit together.
type Store interface {
	storage.RegistrationStore
	// ClientByID reads the client with its secret hash (to compare a
	// client_secret sent back on update).
	ClientByID(ctx context.Context, id string) (*storage.Client, error)
	BeginTX(ctx context.Context) (context.Context, error)
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Config is the handler's dependencies.
type Config struct {
	// Issuer is the server's issuer URL; registration client URIs hang
	// off it.
	Issuer  string
	Clients Clients
	Store   Store
	// Tokens makes and hashes the bwi_/bwr_ tokens (the same Hasher the
	// admin Service issues initial access tokens with).
	Tokens *regtoken.Hasher
	// Egress refuses URLs toward the server's own networks.
	Egress URLChecker
	// SecretHasher compares a client_secret sent back on update.
	SecretHasher fosite.Hasher
	Policy       Policy
	// DefaultIDTokenAlg is the algorithm of the ID tokens of a client that
	// registers none (the server's --id-token-alg): a registration
	// response names it, so the client learns what it gets (OpenID
	// Connect Dynamic Client Registration 1.0 §3.2). Empty leaves the
	// member out.
	DefaultIDTokenAlg string
	Now               func() time.Time
	Logger            logrus.FieldLogger
	// Audit receives refusals; successful registrations, updates and
	// deletions are audited by the Service.
	Audit func(ctx context.Context, e storage.AuditEvent)
}

// Handler serves the registration endpoints.
type Handler struct {
	cfg Config
}

// New checks cfg and returns the Handler.
func New(cfg Config) (*Handler, error) {
	var missing []string
	for name, ok := range map[string]bool{
		"Issuer": cfg.Issuer != "", "Clients": cfg.Clients != nil, "Store": cfg.Store != nil,
		"Tokens": cfg.Tokens != nil, "Egress": cfg.Egress != nil, "SecretHasher": cfg.SecretHasher != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("registration: config is missing %s", strings.Join(missing, ", "))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Logger = l
	}
	if cfg.Audit == nil {
		cfg.Audit = func(context.Context, storage.AuditEvent) {}
	}
	return &Handler{cfg: cfg}, nil
}

// Register mounts the endpoints, each with its protection policy.
func (h *Handler) Register(r *mux.Router) {
	pol := protect.Registration(claimant)
	r.Handle(Path, protect.Route(pol, http.HandlerFunc(h.handleRegister))).Methods(http.MethodPost)
	r.Handle(Path+"/{client_id}", protect.Route(pol, http.HandlerFunc(h.handleRead))).Methods(http.MethodGet)
	r.Handle(Path+"/{client_id}", protect.Route(pol, http.HandlerFunc(h.handleUpdate))).Methods(http.MethodPut)
	r.Handle(Path+"/{client_id}", protect.Route(pol, http.HandlerFunc(h.handleDelete))).Methods(http.MethodDelete)
}

// claimant names who a registration request speaks for, for the
// per-identity rate limit: the client of a registration client URI, else
// the initial access token (by a hash prefix, never the token), else open
// registration as a whole.
func claimant(r *http.Request) string {
	if id := mux.Vars(r)["client_id"]; id != "" {
		return id
	}
	if tok, ok := bearer(r); ok {
		sum := sha256.Sum256([]byte(tok))
		return "registration:" + hex.EncodeToString(sum[:8])
	}
	return "registration:open"
}

// bearer returns the request's bearer token (RFC 6750 §2.1).
func bearer(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "Bearer ") {
		return "", false
	}
	tok := strings.TrimSpace(v[7:])
	return tok, tok != ""
}

// errInvalidToken: the bearer token is unknown, malformed, expired, used
// up or revoked (RFC 6750 §3.1 invalid_token).
var errInvalidToken = errors.New("registration: invalid token")

// errNoToken: a token is required and none was sent (RFC 6750 §3.1).
var errNoToken = errors.New("registration: token required")

// handleRegister is RFC 7591 §3.1.
func (h *Handler) handleRegister(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var hashes [][]byte
	tok, sent := bearer(r)
	switch {
	case sent:
		if hashes = h.cfg.Tokens.Lookup(regtoken.InitialPrefix, tok); hashes == nil {
			h.fail(w, r, errInvalidToken, "malformed initial access token")
			return
		}
	case !h.cfg.Policy.Open:
		h.fail(w, r, errNoToken, "no initial access token")
		return
	}
	req, err := h.readBody(r, false)
	if err != nil {
		h.fail(w, r, err, "invalid metadata")
		return
	}
	// The policy a token narrows is known only once the token is counted;
	// check against the operator's policy first, so nothing is counted or
	// resolved for a request the policy refuses anyway.
	if err := applyPolicy(&req.spec, req.fields, h.cfg.Policy); err != nil {
		h.fail(w, r, err, "refused by policy")
		return
	}
	// Checking the URLs resolves their hosts. With a token, that waits
	// until the token has been counted (and is rolled back with it), so a
	// caller without a valid token cannot make the server look up names.
	if hashes == nil {
		if err := checkURLs(ctx, h.cfg.Egress, &req.spec); err != nil {
			h.fail(w, r, err, "refused URL")
			return
		}
	}
	regToken, regHash, err := h.cfg.Tokens.New(regtoken.RegistrationPrefix)
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	var (
		client *storage.Client
		secret string
	)
	err = h.inTx(ctx, func(ctx context.Context) error {
		via, actor := storage.RegisteredOpen, admin.Actor{ID: "registration:open"}
		if hashes != nil {
			// One atomic statement decides whether this registration may
			// use the token; it is rolled back with the transaction.
			t, err := h.cfg.Store.UseInitialAccessToken(ctx, hashes, h.cfg.Now())
			if errors.Is(err, storage.ErrNotFound) {
				return errInvalidToken
			}
			if err != nil {
				return err
			}
			via, actor = t.ID, admin.Actor{ID: "initial_token:" + t.ID}
			if err := applyPolicy(&req.spec, req.fields, h.cfg.Policy.narrowed(t)); err != nil {
				return err
			}
			if err := checkURLs(ctx, h.cfg.Egress, &req.spec); err != nil {
				return err
			}
		}
		if client, secret, err = h.cfg.Clients.RegisterClient(ctx, actor, req.spec, via); err != nil {
			return err
		}
		return h.cfg.Store.CreateRegistrationToken(ctx, client.ID, regHash, h.cfg.Now())
	})
	if err != nil {
		h.fail(w, r, err, "registration failed")
		return
	}
	reqinfo.From(ctx).SetClientID(client.ID)
	w.Header().Set("Location", h.clientURI(client.ID))
	h.writeClient(w, http.StatusCreated, client, secret, regToken)
}

// authorize checks the registration access token of the client named in
// the path (RFC 7592 §1) and returns the client and the token's hashes.
// An unknown or disabled client is invalid_token like a wrong token, so
// the endpoint says nothing about which clients exist.
func (h *Handler) authorize(r *http.Request) (*storage.Client, [][]byte, error) {
	id := mux.Vars(r)["client_id"]
	tok, ok := bearer(r)
	if !ok {
		return nil, nil, errNoToken
	}
	hashes := h.cfg.Tokens.Lookup(regtoken.RegistrationPrefix, tok)
	if hashes == nil {
		return nil, nil, errInvalidToken
	}
	if err := h.cfg.Store.CheckRegistrationToken(r.Context(), id, hashes); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil, errInvalidToken
		}
		return nil, nil, err
	}
	c, err := h.cfg.Store.ClientByID(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && c.Disabled) {
		return nil, nil, errInvalidToken
	}
	if err != nil {
		return nil, nil, err
	}
	reqinfo.From(r.Context()).SetClientID(c.ID)
	return c, hashes, nil
}

// handleRead is RFC 7592 §2.1.
func (h *Handler) handleRead(w http.ResponseWriter, r *http.Request) {
	c, _, err := h.authorize(r)
	if err != nil {
		h.fail(w, r, err, "read refused")
		return
	}
	h.writeClient(w, http.StatusOK, c, "", "")
}

// handleUpdate is RFC 7592 §2.2: the body replaces the client's metadata
// and the registration access token is rotated, the old one ceasing to
// work in the same transaction.
func (h *Handler) handleUpdate(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	cur, hashes, err := h.authorize(r)
	if err != nil {
		h.fail(w, r, err, "update refused")
		return
	}
	req, err := h.readBody(r, true)
	if err != nil {
		h.fail(w, r, err, "invalid metadata")
		return
	}
	if req.spec.ID != cur.ID {
		h.fail(w, r, badMetadata("client_id must be the client's own"), "client_id mismatch")
		return
	}
	if req.clientSecret != nil {
		if cur.SecretHash == "" || h.cfg.SecretHasher.Compare(ctx, []byte(cur.SecretHash), []byte(*req.clientSecret)) != nil {
			h.fail(w, r, badMetadata("client_secret does not match the issued secret; leave it out or send the current one"), "client_secret mismatch")
			return
		}
	}
	pol := h.cfg.Policy
	if cur.RegisteredVia != storage.RegisteredOpen {
		t, err := h.cfg.Store.InitialAccessTokenByID(ctx, cur.RegisteredVia)
		switch {
		case err == nil:
			pol = pol.narrowed(t)
		case errors.Is(err, storage.ErrNotFound):
			pol = pol.heldBy(cur)
		default:
			h.fail(w, r, err, "")
			return
		}
	}
	if err := applyPolicy(&req.spec, req.fields, pol); err != nil {
		h.fail(w, r, err, "refused by policy")
		return
	}
	if err := checkURLs(ctx, h.cfg.Egress, &req.spec); err != nil {
		h.fail(w, r, err, "refused URL")
		return
	}
	// What only an admin may set stays as the admin set it.
	keep := cur.Spec()
	req.spec.Audience, req.spec.SkipConsent, req.spec.PKCEOptional = keep.Audience, keep.SkipConsent, keep.PKCEOptional
	req.spec.AccessTokenLifespan, req.spec.RefreshTokenLifespan, req.spec.IDTokenLifespan = keep.AccessTokenLifespan, keep.RefreshTokenLifespan, keep.IDTokenLifespan

	next, nextHash, err := h.cfg.Tokens.New(regtoken.RegistrationPrefix)
	if err != nil {
		h.fail(w, r, err, "")
		return
	}
	var (
		c      *storage.Client
		secret string
	)
	err = h.inTx(ctx, func(ctx context.Context) error {
		// Of concurrent updates presenting the same token, one rotates it;
		// the others match nothing and change nothing.
		if err := h.cfg.Store.RotateRegistrationToken(ctx, cur.ID, hashes, nextHash, h.cfg.Now()); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return errInvalidToken
			}
			return err
		}
		c, secret, err = h.cfg.Clients.UpdateClient(ctx, admin.Actor{ID: "client:" + cur.ID}, cur.ID, req.spec, cur.Version)
		return err
	})
	if err != nil {
		h.fail(w, r, err, "update failed")
		return
	}
	h.writeClient(w, http.StatusOK, c, secret, next)
}

// handleDelete is RFC 7592 §2.3: the client, its tokens, consents and
// registration access token go.
func (h *Handler) handleDelete(w http.ResponseWriter, r *http.Request) {
	c, _, err := h.authorize(r)
	if err != nil {
		h.fail(w, r, err, "delete refused")
		return
	}
	if err := h.cfg.Clients.DeleteClient(r.Context(), admin.Actor{ID: "client:" + c.ID}, c.ID); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			err = errInvalidToken // a concurrent delete won
		}
		h.fail(w, r, err, "delete failed")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) readBody(r *http.Request, update bool) (*request, error) {
	// The pipeline read and size-checked the body once (StrictInput) and
	// put it back; this reads that copy.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, badMetadata("could not read the body")
	}
	if mt := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(mt), "application/json") {
		return nil, badMetadata("the body must be application/json")
	}
	return decode(body, update)
}

func (h *Handler) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	tctx, err := h.cfg.Store.BeginTX(ctx)
	if err != nil {
		return fmt.Errorf("registration: begin: %w", err)
	}
	if err := fn(tctx); err != nil {
		if rerr := h.cfg.Store.Rollback(tctx); rerr != nil {
			h.cfg.Logger.WithError(rerr).Warn("registration: rollback failed")
		}
		return err
	}
	if err := h.cfg.Store.Commit(tctx); err != nil {
		return fmt.Errorf("registration: commit: %w", err)
	}
	return nil
}

func (h *Handler) clientURI(id string) string {
	return h.cfg.Issuer + Path + "/" + url.PathEscape(id)
}

// adminOnly are spec members a registration response leaves out: a
// registrant cannot set them (refusedFields), so showing them only
// confuses RFC 7591 clients.
var adminOnly = []string{"skip_consent", "pkce_optional", "audience", "access_token_lifespan", "refresh_token_lifespan", "id_token_lifespan"}

// writeClient answers RFC 7591 §3.2.1: every registered metadata value,
// plus the client secret and the registration access token when issued
// by this request.
func (h *Handler) writeClient(w http.ResponseWriter, status int, c *storage.Client, secret, regToken string) {
	spec := c.Spec()
	b, err := json.Marshal(spec)
	var out map[string]any
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		h.cfg.Logger.WithError(err).Error("registration: render client")
		writeError(w, http.StatusInternalServerError, "server_error", "The server encountered an unexpected condition.")
		return
	}
	for _, k := range adminOnly {
		delete(out, k)
	}
	for k, v := range out {
		if v == nil {
			delete(out, k)
		}
	}
	if spec.RequestObjectSigningAlg == "" {
		delete(out, "request_object_signing_alg")
	}
	if spec.IDTokenSignedResponseAlg == "" && h.cfg.DefaultIDTokenAlg != "" {
		out["id_token_signed_response_alg"] = h.cfg.DefaultIDTokenAlg
	}
	out["client_id_issued_at"] = c.CreatedAt.Unix()
	out["registration_client_uri"] = h.clientURI(c.ID)
	if secret != "" {
		out["client_secret"] = secret
		out["client_secret_expires_at"] = 0
	}
	if regToken != "" {
		out["registration_access_token"] = regToken
	}
	body, err := json.Marshal(out)
	if err != nil {
		h.cfg.Logger.WithError(err).Error("registration: render client")
		writeError(w, http.StatusInternalServerError, "server_error", "The server encountered an unexpected condition.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fail is the one place errors become responses: RFC 7591 §3.2.2 for bad
// metadata, RFC 6750 §3 for tokens, 503 when the database is away, and a
// bare 500 for anything unexpected (logged, never detailed). Refusals are
// audited with a fixed reason, never a token.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error, reason string) {
	var (
		meta *metadataError
		inv  *admin.InvalidError
	)
	status, code, desc := http.StatusInternalServerError, "server_error", "The server encountered an unexpected condition."
	switch {
	case errors.Is(err, errNoToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark-registration"`)
		status, code, desc = http.StatusUnauthorized, "invalid_token", "A bearer token is required."
	case errors.Is(err, errInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark-registration", error="invalid_token"`)
		status, code, desc = http.StatusUnauthorized, "invalid_token", "The token is unknown, expired, used up or revoked."
	case errors.As(err, &meta):
		status, code, desc = http.StatusBadRequest, meta.code, meta.description
	case errors.As(err, &inv):
		parts := make([]string, 0, len(inv.Problems))
		code = "invalid_client_metadata"
		for _, p := range inv.Problems {
			parts = append(parts, p.Field+": "+p.Problem)
			if strings.HasPrefix(p.Field, "redirect_uris") {
				code = "invalid_redirect_uri"
			}
		}
		status, desc = http.StatusBadRequest, strings.Join(parts, "; ")
		if desc == "" {
			desc = inv.Description
		}
	case errors.Is(err, storage.ErrInvalidInput):
		status, code, desc = http.StatusBadRequest, "invalid_client_metadata", "The metadata contains bytes that are not valid text."
	case errors.Is(err, storage.ErrPreconditionFailed):
		status, code, desc = http.StatusConflict, "conflict", "The client changed meanwhile; read it and try again."
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, fosite.ErrSerializationFailure):
		w.Header().Set("Retry-After", "5")
		status, code, desc = http.StatusServiceUnavailable, "temporarily_unavailable", "The service is temporarily unavailable. Please try again shortly."
	}
	if status >= 500 {
		h.cfg.Logger.WithError(err).WithField("route", reqinfo.From(r.Context()).Route()).Error("registration: request failed")
	}
	if status < 500 || reason != "" {
		event := storage.AuditEvent{Event: "registration.refused", Outcome: "refused", Time: h.cfg.Now().UTC(),
			Details: map[string]string{"reason": reason, "error": code, "method": r.Method}}
		if id := mux.Vars(r)["client_id"]; id != "" {
			event.ClientID = id
		}
		h.cfg.Audit(r.Context(), event)
	}
	writeError(w, status, code, desc)
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
