package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// The API key service (apikeys.create/rotate/revoke) and the key ring
// (signing_key.<state> per transition) write their own audit events with the
// actor passed in; the Service does not duplicate them.
var _ APIKeyService = (*apikeys.Service)(nil)

// errNoAPIKeys is returned when the Service was built without an API key
// service.
var errNoAPIKeys = errors.New("admin: API key management is not configured")

// APIKeyInput describes a new API key.
type APIKeyInput struct {
	Name      string
	OwnerType string // apikeys.OwnerClient, OwnerUser or OwnerService
	OwnerID   string
	Scopes    []string
	// ExpiresIn, RotationPeriod and GracePeriod: zero means none / the
	// service default.
	ExpiresIn, RotationPeriod, GracePeriod time.Duration
}

// ListAPIKeys pages through API keys by id (no hashes).
func (s *Service) ListAPIKeys(ctx context.Context, opts storage.ListOptions) ([]*storage.APIKey, error) {
	if s.apiKeys == nil {
		return nil, errNoAPIKeys
	}
	opts.Limit = clampLimit(opts.Limit)
	return s.apiKeys.List(ctx, opts)
}

// GetAPIKey returns one API key (no hash); Version is its ETag.
func (s *Service) GetAPIKey(ctx context.Context, id string) (*storage.APIKey, error) {
	if s.apiKeys == nil {
		return nil, errNoAPIKeys
	}
	return s.apiKeys.Get(ctx, id)
}

// CreateAPIKey creates a key whose scopes the actor must all hold. The
// token is the only copy of the secret: show it once.
func (s *Service) CreateAPIKey(ctx context.Context, a Actor, in APIKeyInput) (string, *storage.APIKey, error) {
	if s.apiKeys == nil {
		return "", nil, errNoAPIKeys
	}
	// Checked here as well as in apikeys so the error is the admin one,
	// whatever the key service's own policy.
	if extra := missingScopes(in.Scopes, a.Scopes); len(extra) > 0 {
		return "", nil, escalation("granting these scopes to an API key", extra)
	}
	if in.OwnerType == apikeys.OwnerClient {
		if err := requireClientPower(a); err != nil {
			return "", nil, err
		}
		if _, err := s.store.ClientByID(ctx, in.OwnerID); errors.Is(err, storage.ErrNotFound) {
			return "", nil, invalid("invalid_request", "the API key is invalid",
				storage.FieldProblem{Field: "owner_id", Problem: "is not a registered client"})
		} else if err != nil {
			return "", nil, fmt.Errorf("admin: create API key: %w", err)
		}
	}
	return s.apiKeys.Create(ctx, apikeys.CreateRequest{
		Name: in.Name, OwnerType: in.OwnerType, OwnerID: in.OwnerID, Scopes: slices.Clone(in.Scopes),
		ExpiresIn: in.ExpiresIn, RotationPeriod: in.RotationPeriod, GracePeriod: in.GracePeriod,
		CreatedBy: a.ID, CreatorScopes: nonNil(a.Scopes),
	})
}

// requireClientPower guards keys owned by a client: such a key can be
// exchanged for the client's access tokens (RFC 8693), so minting one is
// issuing a client credential, which takes admin:clients:write (as
// rotating the client's secret does) besides admin:apikeys.
func requireClientPower(a Actor) error {
	if !slices.Contains(a.Scopes, apikeys.ScopeClientsWrite) {
		return escalation("an API key owned by a client", []string{apikeys.ScopeClientsWrite})
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// RotateAPIKey replaces key id by a successor at once and returns the
// successor's token (show it once). The actor must hold every scope of
// the key: the new token would otherwise hand it those scopes.
func (s *Service) RotateAPIKey(ctx context.Context, a Actor, id string) (string, *storage.APIKey, error) {
	if s.apiKeys == nil {
		return "", nil, errNoAPIKeys
	}
	k, err := s.apiKeys.Get(ctx, id)
	if err != nil {
		return "", nil, err
	}
	if extra := missingScopes(k.Scopes, a.Scopes); len(extra) > 0 {
		return "", nil, escalation("granting these scopes to an API key", extra)
	}
	if k.OwnerType == apikeys.OwnerClient {
		if err := requireClientPower(a); err != nil {
			return "", nil, err
		}
	}
	return s.apiKeys.Rotate(ctx, id, a.ID)
}

// RevokeAPIKey revokes key id at once on every replica.
func (s *Service) RevokeAPIKey(ctx context.Context, a Actor, id string) error {
	if s.apiKeys == nil {
		return errNoAPIKeys
	}
	return s.apiKeys.Revoke(ctx, id, a.ID)
}

// SigningKeyAlgorithms lists the algorithms the ring signs with.
func (s *Service) SigningKeyAlgorithms() []string { return s.keys.Algorithms() }

// ListSigningKeys returns the signing keys without any key material
// (neither sealed private bytes nor the public JWK).
func (s *Service) ListSigningKeys(ctx context.Context) ([]*storage.SigningKey, error) {
	ks, err := s.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("admin: list signing keys: %w", err)
	}
	out := make([]*storage.SigningKey, 0, len(ks))
	for _, k := range ks {
		c := *k
		c.SealedPrivate, c.PublicJWK = nil, nil
		out = append(out, &c)
	}
	return out, nil
}

// RotateSigningKey makes a new key of alg active at once (emergency use).
func (s *Service) RotateSigningKey(ctx context.Context, a Actor, alg string) error {
	if !slices.Contains(s.keys.Algorithms(), alg) {
		return invalid("invalid_request", "unsupported signing algorithm",
			storage.FieldProblem{Field: "alg", Problem: "must be one of " + strings.Join(s.keys.Algorithms(), ", ")})
	}
	if err := s.keys.Rotate(ctx, alg, a.ID); err != nil {
		return fmt.Errorf("admin: rotate signing key: %w", err)
	}
	s.record(ctx, a, "signing_key.rotated", storage.AuditEvent{Details: map[string]string{"alg": alg}})
	return nil
}

// RevokeSigningKey removes kid from the JWKS at once; tokens it signed stop
// validating.
func (s *Service) RevokeSigningKey(ctx context.Context, a Actor, kid string) error {
	if err := s.keys.Revoke(ctx, kid, a.ID); err != nil {
		return fmt.Errorf("admin: revoke signing key: %w", err)
	}
	return nil
}
