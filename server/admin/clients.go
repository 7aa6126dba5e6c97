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

// ClientInput is the client metadata an admin controls. It is
// storage.ClientSpec, the one client shape the API, console, seed file and
// CLI share, so defaults (storage.Client.Normalize) and validation
// (storage.Client.Validate) have one owner.
type ClientInput = storage.ClientSpec

// usesSecret reports whether method authenticates with a client secret.
func usesSecret(method string) bool {
	return method == storage.AuthMethodSecretBasic || method == storage.AuthMethodSecretPost
}

// InputFromClient returns the admin-controlled metadata of c, e.g. to
// prefill an edit form.
func InputFromClient(c *storage.Client) ClientInput { return c.Spec() }

// redactClient drops the secret hashes from a client handed out of the
// Service: no caller needs them, and they must never reach a response.
func redactClient(c *storage.Client) *storage.Client {
	c = c.Clone()
	c.SecretHash = ""
	c.RotatedSecrets = nil
	return c
}

func (s *Service) validateClient(c *storage.Client) error {
	err := c.Validate(s.scopes)
	var v *storage.ValidationError
	if err != nil && !errors.As(err, &v) {
		return err
	}
	if v == nil {
		v = &storage.ValidationError{}
	}
	// Of the algorithms the key ring can sign with, this server keeps
	// keys for those configured (--signing-algs): a client registered for
	// another would get no ID token.
	if alg := c.IDTokenSignedResponseAlg; alg != "" && slices.Contains(storage.SupportedIDTokenSigningAlgs, alg) {
		if algs := s.keys.Algorithms(); !slices.Contains(algs, alg) {
			v.Problems = append(v.Problems, storage.FieldProblem{Field: "id_token_signed_response_alg",
				Problem: fmt.Sprintf("this server signs with %s only", strings.Join(algs, ", "))})
		}
	}
	if len(v.Problems) > 0 {
		slices.SortStableFunc(v.Problems, func(a, b storage.FieldProblem) int { return strings.Compare(a.Field, b.Field) })
		return invalid("invalid_client_metadata", "the client metadata is invalid", v.Problems...)
	}
	return nil
}

// newSecret draws a client secret and returns it with its Argon2id hash.
func (s *Service) newSecret(ctx context.Context) (string, string, error) {
	secret, err := s.randomToken(32)
	if err != nil {
		return "", "", err
	}
	h, err := s.hasher.Hash(ctx, []byte(secret))
	if err != nil {
		return "", "", fmt.Errorf("admin: hash client secret: %w", err)
	}
	return secret, string(h), nil
}

// ListClients pages through clients by id (secret hashes removed).
func (s *Service) ListClients(ctx context.Context, opts storage.ListOptions) ([]*storage.Client, error) {
	opts.Limit = clampLimit(opts.Limit)
	cs, err := s.store.ListClients(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("admin: list clients: %w", err)
	}
	for i, c := range cs {
		cs[i] = redactClient(c)
	}
	return cs, nil
}

// GetClient returns the client (secret hashes removed); Version is its ETag.
func (s *Service) GetClient(ctx context.Context, id string) (*storage.Client, error) {
	c, err := s.store.ClientByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("admin: get client: %w", err)
	}
	return redactClient(c), nil
}

// CreateClient registers a client owned by a. For a client authenticating
// with a secret the server always generates the secret: it is returned
// here once and stored only as its Argon2id hash. secret is "" otherwise.
func (s *Service) CreateClient(ctx context.Context, a Actor, in ClientInput) (c *storage.Client, secret string, err error) {
	return s.createClient(ctx, a, in, "")
}

// createClient is CreateClient; via is Client.RegisteredVia ("" for an
// admin's client, see RegisterClient).
func (s *Service) createClient(ctx context.Context, a Actor, in ClientInput, via string) (c *storage.Client, secret string, err error) {
	c = &storage.Client{Owner: a.ID, RegisteredVia: via}
	in.ApplyTo(c)
	if c.ID == "" {
		if c.ID, err = s.randomID(); err != nil {
			return nil, "", err
		}
	}
	if err := s.validateClient(c); err != nil {
		return nil, "", err
	}
	if usesSecret(c.TokenEndpointAuthMethod) {
		if secret, c.SecretHash, err = s.newSecret(ctx); err != nil {
			return nil, "", err
		}
	}
	now := s.clock()
	c.CreatedAt, c.UpdatedAt = now, now
	if err := s.store.CreateClient(ctx, c); err != nil {
		return nil, "", fmt.Errorf("admin: create client: %w", err)
	}
	event, details := "client.created", map[string]string{"token_endpoint_auth_method": c.TokenEndpointAuthMethod}
	if via != "" {
		event, details["registered_via"] = "client.registered", via
	}
	s.record(ctx, a, event, storage.AuditEvent{ClientID: c.ID, Details: details})
	return redactClient(c), secret, nil
}

// UpdateClient replaces the metadata of client id if its Version is still
// ifVersion (storage.ErrPreconditionFailed otherwise). in.ID must be empty
// or equal id. Switching to a secret method generates a secret (returned
// once); switching away from one drops the stored secrets.
func (s *Service) UpdateClient(ctx context.Context, a Actor, id string, in ClientInput, ifVersion int64) (c *storage.Client, secret string, err error) {
	if in.ID != "" && in.ID != id {
		return nil, "", invalid("invalid_client_metadata", "client_id cannot be changed",
			storage.FieldProblem{Field: "client_id", Problem: "is set by the server and cannot be changed"})
	}
	old, err := s.store.ClientByID(ctx, id)
	if err != nil {
		return nil, "", fmt.Errorf("admin: update client: %w", err)
	}
	if old.Version != ifVersion {
		return nil, "", fmt.Errorf("admin: update client %d: %w", ifVersion, storage.ErrPreconditionFailed)
	}
	c = old.Clone()
	in.ApplyTo(c)
	if err := s.validateClient(c); err != nil {
		return nil, "", err
	}
	var dropped []string
	switch {
	case usesSecret(c.TokenEndpointAuthMethod) && c.SecretHash == "":
		if secret, c.SecretHash, err = s.newSecret(ctx); err != nil {
			return nil, "", err
		}
	case !usesSecret(c.TokenEndpointAuthMethod) && c.SecretHash != "":
		dropped = secretHashes(c)
		c.SecretHash, c.RotatedSecrets = "", nil
	}
	c.UpdatedAt = s.clock()
	if err := s.store.UpdateClient(ctx, c, ifVersion); err != nil {
		return nil, "", fmt.Errorf("admin: update client: %w", err)
	}
	s.evictAll(dropped)
	s.record(ctx, a, "client.updated", storage.AuditEvent{ClientID: c.ID, Details: map[string]string{
		"version": fmt.Sprint(c.Version),
	}})
	return redactClient(c), secret, nil
}

func secretHashes(c *storage.Client) []string {
	var out []string
	if c.SecretHash != "" {
		out = append(out, c.SecretHash)
	}
	for _, r := range c.RotatedSecrets {
		out = append(out, r.Hash)
	}
	return out
}

func (s *Service) evictAll(hashes []string) {
	for _, h := range hashes {
		s.evict([]byte(h))
	}
}

// DeleteClient removes the client and every token issued to it, and
// revokes the API keys it owns (first: a failure then leaves a client with
// dead keys, never live keys of a deleted client).
func (s *Service) DeleteClient(ctx context.Context, a Actor, id string) error {
	old, err := s.store.ClientByID(ctx, id)
	if err != nil {
		return fmt.Errorf("admin: delete client: %w", err)
	}
	keys, err := s.revokeOwnedKeys(ctx, a, apikeys.OwnerClient, id)
	if err != nil {
		return err
	}
	if err := s.store.DeleteClient(ctx, id); err != nil {
		return fmt.Errorf("admin: delete client: %w", err)
	}
	s.evictAll(secretHashes(old))
	s.record(ctx, a, "client.deleted", storage.AuditEvent{ClientID: id, Details: map[string]string{
		"api_keys_revoked": fmt.Sprint(keys),
	}})
	return nil
}

// RotateClientSecret gives the client a new secret, returned once. The
// previous secret stays valid for the configured overlap so deployed
// clients can be updated without an outage; rotated secrets whose overlap
// ended are dropped.
func (s *Service) RotateClientSecret(ctx context.Context, a Actor, id string) (*storage.Client, string, error) {
	var (
		out    *storage.Client
		secret string
	)
	err := retryVersion(func() error {
		c, err := s.store.ClientByID(ctx, id)
		if err != nil {
			return fmt.Errorf("admin: rotate client secret: %w", err)
		}
		if !usesSecret(c.TokenEndpointAuthMethod) {
			return fmt.Errorf("%w (token_endpoint_auth_method %s)", ErrNoSecret, c.TokenEndpointAuthMethod)
		}
		now := s.clock()
		kept := c.RotatedSecrets[:0]
		for _, r := range c.RotatedSecrets {
			if r.ExpiresAt.After(now) {
				kept = append(kept, r)
			}
		}
		if c.SecretHash != "" {
			kept = append(kept, storage.RotatedSecret{Hash: c.SecretHash, ExpiresAt: now.Add(s.overlap)})
		}
		c.RotatedSecrets = kept
		if secret, c.SecretHash, err = s.newSecret(ctx); err != nil {
			return err
		}
		c.UpdatedAt = now
		if err := s.store.UpdateClient(ctx, c, c.Version); err != nil {
			return fmt.Errorf("admin: rotate client secret: %w", err)
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	s.record(ctx, a, "client.secret_rotated", storage.AuditEvent{ClientID: id, Details: map[string]string{
		"previous_valid_until": s.clock().Add(s.overlap).Format(time.RFC3339),
	}})
	return redactClient(out), secret, nil
}

// DisableClient is incident containment: in one transaction it marks the
// client disabled and revokes every token issued to it, and it drops
// cached verifications of its secrets. It returns how many tokens were
// revoked. Disabling a disabled client revokes again (tokens issued in
// between would be a bug, but containment must not rely on that).
func (s *Service) DisableClient(ctx context.Context, a Actor, id string) (*storage.Client, int64, error) {
	c, n, err := s.setClientDisabled(ctx, id, true)
	if err != nil {
		return nil, 0, err
	}
	s.evictAll(secretHashes(c))
	// API keys owned by the client stand in for its secret (token exchange).
	keys, err := s.revokeOwnedKeys(ctx, a, apikeys.OwnerClient, id)
	if err != nil {
		return nil, n, err
	}
	s.record(ctx, a, "client.disabled", storage.AuditEvent{ClientID: id, Details: map[string]string{
		"tokens_revoked": fmt.Sprint(n), "api_keys_revoked": fmt.Sprint(keys),
	}})
	return redactClient(c), n, nil
}

// EnableClient lifts DisableClient. Revoked tokens stay revoked.
func (s *Service) EnableClient(ctx context.Context, a Actor, id string) (*storage.Client, error) {
	c, _, err := s.setClientDisabled(ctx, id, false)
	if err != nil {
		return nil, err
	}
	s.record(ctx, a, "client.enabled", storage.AuditEvent{ClientID: id})
	return redactClient(c), nil
}

func (s *Service) setClientDisabled(ctx context.Context, id string, disabled bool) (*storage.Client, int64, error) {
	var (
		out *storage.Client
		n   int64
	)
	err := retryVersion(func() error {
		return s.inTx(ctx, func(ctx context.Context) error {
			c, err := s.store.ClientByID(ctx, id)
			if err != nil {
				return fmt.Errorf("admin: client: %w", err)
			}
			if c.Disabled != disabled {
				c.Disabled = disabled
				c.UpdatedAt = s.clock()
				if err := s.store.UpdateClient(ctx, c, c.Version); err != nil {
					return fmt.Errorf("admin: client: %w", err)
				}
			}
			if disabled {
				if n, err = s.store.RevokeTokensByClient(ctx, id); err != nil {
					return fmt.Errorf("admin: revoke client tokens: %w", err)
				}
			}
			out = c
			return nil
		})
	})
	return out, n, err
}

// revokeOwnedKeys revokes every live API key owned by (ownerType, ownerID):
// containment of a client or user covers the credentials it owns. It is
// one store statement under the owner's lock, so a successor minted by a
// rotation running meanwhile is covered or never created (no list-then-
// revoke window).
func (s *Service) revokeOwnedKeys(ctx context.Context, a Actor, ownerType, ownerID string) (int64, error) {
	if s.apiKeys == nil {
		return 0, nil
	}
	n, err := s.apiKeys.RevokeOwner(ctx, ownerType, ownerID, a.ID)
	if err != nil {
		return 0, fmt.Errorf("admin: revoke api keys: %w", err)
	}
	return n, nil
}
