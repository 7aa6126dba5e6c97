package storage

import (
	"context"
	"time"
)

// RegisteredOpen is Client.RegisteredVia of a client that registered
// without an initial access token (open registration).
const RegisteredOpen = "open"

// InitialAccessToken authorizes dynamic client registrations (RFC 7591
// §3). An admin issues it; the token itself is shown once and stored only
// as a keyed lookup hash.
type InitialAccessToken struct {
	// ID is the token's public name (admin API, console, audit, and
	// Client.RegisteredVia of the clients registered with it).
	ID          string `json:"id"`
	Description string `json:"description"`
	// Scopes and GrantTypes narrow the server's registration policy for
	// clients registered with this token; empty means the policy's.
	Scopes     []string `json:"scopes"`
	GrantTypes []string `json:"grant_types"`
	// MaxClients is how many registrations the token allows (1: single
	// use); Registered how many it has made. Deleting a client does not
	// give its registration back.
	MaxClients int        `json:"max_clients"`
	Registered int        `json:"registered"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
}

// Usable reports whether the token may register one more client at now.
func (t *InitialAccessToken) Usable(now time.Time) bool { return t.Status(now) == InitialTokenUsable }

// Statuses of an initial access token (Status).
const (
	InitialTokenUsable  = "usable"
	InitialTokenRevoked = "revoked"
	InitialTokenExpired = "expired"
	InitialTokenUsedUp  = "used up"
)

// EndedAt is when the token stopped being usable by the clock: its
// expiry, or its revocation if that came first. (Used up is a count, not
// a time: a used-up token ends when it expires.) The janitor removes
// tokens that ended longer ago than a retention window.
func (t *InitialAccessToken) EndedAt() time.Time {
	if t.RevokedAt != nil && t.RevokedAt.Before(t.ExpiresAt) {
		return *t.RevokedAt
	}
	return t.ExpiresAt
}

// Status says whether the token may register a client at now, and if not,
// why: revoked, expired or used up (in that order).
func (t *InitialAccessToken) Status(now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return InitialTokenRevoked
	case !now.Before(t.ExpiresAt):
		return InitialTokenExpired
	case t.Registered >= t.MaxClients:
		return InitialTokenUsedUp
	}
	return InitialTokenUsable
}

// RegistrationStore keeps initial access tokens and the registration
// access tokens of registered clients (RFC 7592). Tokens are looked up by
// keyed hashes the caller computes; a lookup takes several (one per
// configured master secret), so tokens survive a master-secret rotation.
//
// Every decision is one atomic statement: of concurrent registrations
// racing for a token's last use exactly one succeeds, and of concurrent
// rotations presenting the same registration access token exactly one
// succeeds.
type RegistrationStore interface {
	// CreateInitialAccessToken stores t with its lookup hash; ErrConflict
	// if the id or hash exists.
	CreateInitialAccessToken(ctx context.Context, t *InitialAccessToken, lookupHash []byte) error
	// InitialAccessTokenByID returns the token; ErrNotFound if unknown.
	InitialAccessTokenByID(ctx context.Context, id string) (*InitialAccessToken, error)
	// ListInitialAccessTokens pages through tokens by id.
	ListInitialAccessTokens(ctx context.Context, opts ListOptions) ([]*InitialAccessToken, error)
	// RevokeInitialAccessToken marks the token revoked at `at` (a revoked
	// token stays revoked; revoking again changes nothing). ErrNotFound if
	// unknown.
	RevokeInitialAccessToken(ctx context.Context, id string, at time.Time) (*InitialAccessToken, error)
	// UseInitialAccessToken counts one registration against the token
	// whose lookup hash is among hashes, if it is usable at now (not
	// revoked, not expired, registrations left), and returns it as counted.
	// ErrNotFound when no usable token matches. Inside a transaction the
	// count is rolled back with it.
	UseInitialAccessToken(ctx context.Context, hashes [][]byte, now time.Time) (*InitialAccessToken, error)
	// DeleteEndedInitialAccessTokens removes the tokens that ended (EndedAt)
	// before `before`, at most batch rows per statement, and returns how
	// many it removed. Clients registered with a removed token keep its id
	// in RegisteredVia.
	DeleteEndedInitialAccessTokens(ctx context.Context, before time.Time, batch int) (int64, error)

	// CreateRegistrationToken stores the registration access token hash of
	// a client (ErrConflict if the client has one).
	CreateRegistrationToken(ctx context.Context, clientID string, hash []byte, at time.Time) error
	// CheckRegistrationToken returns nil when one of hashes is the client's
	// registration access token, ErrNotFound otherwise.
	CheckRegistrationToken(ctx context.Context, clientID string, hashes [][]byte) error
	// RotateRegistrationToken replaces the client's token by next if the
	// current one is among old, in one conditional statement; ErrNotFound
	// (nothing changed) otherwise. The old token stops working at once.
	RotateRegistrationToken(ctx context.Context, clientID string, old [][]byte, next []byte, at time.Time) error
}
