package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/keys/regtoken"
	"github.com/bulwark-auth/bulwark/storage"
)

// Bounds of an initial access token.
const (
	MaxInitialTokenClients  = 10000
	MaxInitialTokenLifetime = 365 * 24 * time.Hour
	DefaultInitialTokenLife = 24 * time.Hour
)

// ErrRegistrationTokensOff means initial access token operations were
// asked of a Service configured without a token hasher.
var ErrRegistrationTokensOff = errors.New("admin: initial access tokens are not configured")

// InitialTokenInput is what an admin chooses about an initial access
// token (RFC 7591 §3). Scopes and GrantTypes narrow the registration
// policy for the clients registered with it (empty: the policy's).
type InitialTokenInput struct {
	Description string                 `json:"description"`
	Scopes      storage.SpaceSeparated `json:"scope"`
	GrantTypes  []string               `json:"grant_types"`
	// MaxClients is how many clients may register with the token (1 makes
	// it single-use; 0 means 1).
	MaxClients int `json:"max_clients"`
	// ExpiresIn is the token's lifetime (0 means DefaultInitialTokenLife).
	ExpiresIn storage.Duration `json:"expires_in"`
}

func (s *Service) validateInitialToken(in *InitialTokenInput) error {
	var problems []storage.FieldProblem
	add := func(field, format string, args ...any) {
		problems = append(problems, storage.FieldProblem{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if in.MaxClients == 0 {
		in.MaxClients = 1
	}
	if in.ExpiresIn == 0 {
		in.ExpiresIn = storage.Duration(DefaultInitialTokenLife)
	}
	if len(in.Description) > 200 {
		add("description", "must be at most 200 characters")
	}
	if in.MaxClients < 1 || in.MaxClients > MaxInitialTokenClients {
		add("max_clients", "must be between 1 and %d", MaxInitialTokenClients)
	}
	if d := time.Duration(in.ExpiresIn); d < time.Minute || d > MaxInitialTokenLifetime {
		add("expires_in", "must be between 1m and %s", MaxInitialTokenLifetime)
	}
	// The scope and grant rules of a client apply: validate the token's
	// lists as a client carrying them.
	probe := &storage.Client{ID: "probe", TokenEndpointAuthMethod: storage.AuthMethodSecretBasic,
		Scopes: in.Scopes, GrantTypes: []string{"client_credentials"}}
	if err := probe.Validate(s.scopes); err != nil {
		var v *storage.ValidationError
		if errors.As(err, &v) {
			for _, p := range v.Problems {
				if p.Field == "scope" {
					problems = append(problems, p)
				}
			}
		}
	}
	for _, g := range in.GrantTypes {
		if !slices.Contains(storage.SupportedGrantTypes, g) {
			add("grant_types", "unsupported grant type %q (supported: %s)", g, strings.Join(storage.SupportedGrantTypes, ", "))
		}
	}
	if len(problems) > 0 {
		return invalid("invalid_request", "the initial access token is invalid", sortProblems(problems)...)
	}
	return nil
}

// CreateInitialAccessToken issues an initial access token. The token is
// returned once; only its keyed lookup hash is stored.
func (s *Service) CreateInitialAccessToken(ctx context.Context, a Actor, in InitialTokenInput) (*storage.InitialAccessToken, string, error) {
	if s.regTok == nil {
		return nil, "", ErrRegistrationTokensOff
	}
	if err := s.validateInitialToken(&in); err != nil {
		return nil, "", err
	}
	id, err := s.randomID()
	if err != nil {
		return nil, "", err
	}
	token, hash, err := s.regTok.New(regtoken.InitialPrefix)
	if err != nil {
		return nil, "", fmt.Errorf("admin: initial access token: %w", err)
	}
	now := s.clock()
	t := &storage.InitialAccessToken{
		ID: id, Description: in.Description, Scopes: slices.Clone([]string(in.Scopes)), GrantTypes: slices.Clone(in.GrantTypes),
		MaxClients: in.MaxClients, ExpiresAt: now.Add(time.Duration(in.ExpiresIn)), CreatedBy: a.ID, CreatedAt: now,
	}
	if err := s.store.CreateInitialAccessToken(ctx, t, hash); err != nil {
		return nil, "", fmt.Errorf("admin: create initial access token: %w", err)
	}
	s.record(ctx, a, "registration.token_created", storage.AuditEvent{Details: map[string]string{
		"token_id": t.ID, "max_clients": fmt.Sprint(t.MaxClients), "expires_at": t.ExpiresAt.Format(time.RFC3339),
	}})
	return t, token, nil
}

// ListInitialAccessTokens pages through initial access tokens by id.
func (s *Service) ListInitialAccessTokens(ctx context.Context, opts storage.ListOptions) ([]*storage.InitialAccessToken, error) {
	opts.Limit = clampLimit(opts.Limit)
	ts, err := s.store.ListInitialAccessTokens(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("admin: list initial access tokens: %w", err)
	}
	return ts, nil
}

// GetInitialAccessToken returns one initial access token.
func (s *Service) GetInitialAccessToken(ctx context.Context, id string) (*storage.InitialAccessToken, error) {
	t, err := s.store.InitialAccessTokenByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("admin: get initial access token: %w", err)
	}
	return t, nil
}

// RevokeInitialAccessToken stops the token from registering more clients.
// Clients it registered stay; disable or delete them one by one.
func (s *Service) RevokeInitialAccessToken(ctx context.Context, a Actor, id string) (*storage.InitialAccessToken, error) {
	t, err := s.store.RevokeInitialAccessToken(ctx, id, s.clock())
	if err != nil {
		return nil, fmt.Errorf("admin: revoke initial access token: %w", err)
	}
	s.record(ctx, a, "registration.token_revoked", storage.AuditEvent{Details: map[string]string{"token_id": id}})
	return t, nil
}

// RegisterClient creates a client that registered itself (RFC 7591),
// under every rule of CreateClient. via is the initial access token's id
// or storage.RegisteredOpen; it is kept on the client and audited
// ("client.registered").
func (s *Service) RegisterClient(ctx context.Context, a Actor, in ClientInput, via string) (*storage.Client, string, error) {
	if via == "" {
		return nil, "", errors.New("admin: register client: via is required")
	}
	return s.createClient(ctx, a, in, via)
}
