package apikeys

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulwark-auth/bulwark/keys/apikey"
	"github.com/bulwark-auth/bulwark/storage"
)

// Field limits checked by Create.
const (
	MaxNameLen    = 128
	MaxOwnerIDLen = 255
)

// CreateRequest describes a new key.
type CreateRequest struct {
	Name      string
	OwnerType string // OwnerClient, OwnerUser or OwnerService
	OwnerID   string
	Scopes    []string
	// ExpiresIn, when positive, is a hard end of the key and of every
	// successor rotation gives it. Zero means no hard end.
	ExpiresIn time.Duration
	// RotationPeriod and GracePeriod are the key's rotation policy; zero
	// means the service default.
	RotationPeriod, GracePeriod time.Duration
	// CreatedBy names the actor (an admin user, "cli", an API key subject).
	CreatedBy string
	// CreatorScopes are the scopes the creator holds; the key may not get
	// any other. nil means a superuser (the CLI); an empty non-nil slice
	// holds nothing.
	CreatorScopes []string
}

// Create validates req, makes a key and stores only its Argon2id hash. The
// returned token is the only copy of the secret: show it once.
func (s *Service) Create(ctx context.Context, req CreateRequest) (string, *storage.APIKey, error) {
	rotation, grace := req.RotationPeriod, req.GracePeriod
	if rotation == 0 {
		rotation = s.rotation
	}
	if grace == 0 {
		grace = min(s.grace, rotation/2)
	}
	scopes, err := s.validate(req, rotation, grace)
	if err != nil {
		return "", nil, err
	}
	if req.CreatorScopes != nil {
		var extra []string
		for _, sc := range scopes {
			if !slices.Contains(req.CreatorScopes, sc) {
				extra = append(extra, sc)
			}
		}
		if len(extra) > 0 {
			return "", nil, fmt.Errorf("%w: creator does not hold %s", ErrScopeEscalation, strings.Join(extra, ", "))
		}
	}
	now := s.clock()
	k := &storage.APIKey{
		Name:           req.Name,
		OwnerType:      req.OwnerType,
		OwnerID:        req.OwnerID,
		Scopes:         scopes,
		Status:         storage.APIKeyActive,
		CreatedBy:      req.CreatedBy,
		CreatedAt:      now,
		RotationPeriod: rotation,
		GracePeriod:    grace,
		RotateAt:       now.Add(rotation),
	}
	if req.ExpiresIn > 0 {
		k.ExpiresAt = now.Add(req.ExpiresIn)
	}
	tok, err := s.insertNew(ctx, k)
	if err != nil {
		return "", nil, err
	}
	s.record(ctx, "apikey.create", req.CreatedBy, "success", k, map[string]string{"scopes": strings.Join(scopes, " ")})
	return tok.String(), public(k), nil
}

// validate reports every problem of req at once and returns the scopes
// deduplicated and sorted.
func (s *Service) validate(req CreateRequest, rotation, grace time.Duration) ([]string, error) {
	v := &storage.ValidationError{}
	add := func(field, problem string) {
		v.Problems = append(v.Problems, storage.FieldProblem{Field: field, Problem: problem})
	}
	switch {
	case strings.TrimSpace(req.Name) == "":
		add("name", "is required")
	case len(req.Name) > MaxNameLen:
		add("name", fmt.Sprintf("must be at most %d bytes", MaxNameLen))
	case !utf8.ValidString(req.Name) || strings.ContainsFunc(req.Name, unprintable):
		add("name", "must be UTF-8 without control or formatting characters")
	}
	switch req.OwnerType {
	case OwnerClient, OwnerUser, OwnerService:
	default:
		add("owner_type", "must be client, user or service")
	}
	switch {
	case strings.TrimSpace(req.OwnerID) == "":
		add("owner_id", "is required")
	case len(req.OwnerID) > MaxOwnerIDLen || !utf8.ValidString(req.OwnerID) || strings.ContainsFunc(req.OwnerID, unprintable):
		add("owner_id", fmt.Sprintf("must be at most %d bytes of UTF-8 without control or formatting characters", MaxOwnerIDLen))
	}
	if len(req.Scopes) == 0 {
		add("scopes", "at least one scope is required")
	}
	var scopes []string
	for _, sc := range req.Scopes {
		if !ValidScope(sc) {
			// Scope names are not secret; echoing a bounded one helps.
			if len(sc) > 64 {
				sc = sc[:64] + "…"
			}
			add("scopes", fmt.Sprintf("unknown scope %q", sc))
			continue
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	slices.Sort(scopes)
	if req.ExpiresIn < 0 {
		add("expires_in", "must not be negative")
	}
	if rotation < MinRotationPeriod {
		add("rotation_period", fmt.Sprintf("must be at least %v", MinRotationPeriod))
	}
	if grace < MinGracePeriod || grace >= rotation {
		add("grace_period", fmt.Sprintf("must be at least %v and shorter than the rotation period", MinGracePeriod))
	}
	if len(v.Problems) > 0 {
		return nil, v
	}
	return scopes, nil
}

// unprintable reports control characters and formatting characters (bidi
// overrides, zero-width joiners), which would make a name display as
// something else in the console and CLI.
func unprintable(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// insertNew gives k a fresh id and secret, hashes the secret into k.Hash
// and stores k, retrying on the (astronomically unlikely) id collision.
func (s *Service) insertNew(ctx context.Context, k *storage.APIKey) (apikey.Key, error) {
	for range 3 {
		tok, err := s.mint(ctx, k)
		if err != nil {
			return apikey.Key{}, err
		}
		err = s.store.CreateAPIKey(ctx, k)
		if err == nil {
			return tok, nil
		}
		if !errors.Is(err, storage.ErrConflict) {
			return apikey.Key{}, fmt.Errorf("apikeys: store key: %w", err)
		}
	}
	return apikey.Key{}, fmt.Errorf("apikeys: store key: %w", storage.ErrConflict)
}

// mint draws a new id and secret for k and sets k.ID and k.Hash.
func (s *Service) mint(ctx context.Context, k *storage.APIKey) (apikey.Key, error) {
	tok, err := apikey.Generate(nil)
	if err != nil {
		return apikey.Key{}, fmt.Errorf("apikeys: generate: %w", err)
	}
	h, err := s.hasher.Hash(ctx, []byte(tok.Secret))
	if err != nil {
		return apikey.Key{}, fmt.Errorf("apikeys: hash: %w", err)
	}
	k.ID, k.Hash = tok.ID, string(h)
	return tok, nil
}
