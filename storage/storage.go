package storage

import (
	"context"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	fositestorage "github.com/ory/fosite/storage"
)

// OAuth2Store is everything fosite needs: clients, authorization codes,
// access and refresh token sessions, revocation, PKCE, OpenID Connect
// sessions, pushed authorization requests, and transactions (fosite wraps
// code exchange and refresh rotation in them).
//
// Semantics every backend honours (checked by storagetest):
//   - Keys (signatures, codes, request URIs) are stored as HashKey(key).
//   - GetAuthorizeCodeSession of an invalidated code returns the requester AND
//     fosite.ErrInvalidatedAuthorizeCode.
//   - GetRefreshTokenSession of an inactive refresh token returns the
//     requester AND fosite.ErrInactiveToken.
//   - RotateRefreshToken marks the old refresh token inactive (it is kept to
//     detect reuse) and deletes the family's access tokens.
//   - RevokeRefreshToken/RevokeAccessToken act on the whole request id.
//   - Unknown keys return fosite.ErrNotFound; Get*Session accepts a nil
//     session (revocation passes one).
//   - RotateRefreshToken on an already inactive token returns
//     fosite.ErrSerializationFailure (a concurrent refresh won) and changes
//     nothing; on an unknown token fosite.ErrNotFound.
//   - Single use: InvalidateAuthorizeCodeSession of a code already
//     invalidated returns fosite.ErrInvalidatedAuthorizeCode, so of
//     concurrent exchanges exactly one wins. It also consumes the code's
//     PKCE row; DeletePKCERequestSession changes nothing (fosite calls it
//     before it compares the verifier, and a wrong verifier must not strip
//     the PKCE requirement from the code).
//   - GetOpenIDConnectSession and GetPARSession consume the row: a second
//     call, or a concurrent one, returns fosite.ErrNotFound. The matching
//     Delete calls are idempotent.
//   - Revocation of a family (RevokeRefreshToken/RevokeAccessToken) also
//     covers tokens a concurrent code exchange or rotation of that family
//     commits: backends serialise the two (postgres/doc.go, lock order).
//   - GetClient hides disabled clients (ErrNotFound), so fosite refuses
//     them everywhere; ClientByID still returns them.
type OAuth2Store interface {
	fosite.ClientManager
	oauth2.CoreStorage
	oauth2.TokenRevocationStorage
	pkce.PKCERequestStorage
	openid.OpenIDConnectRequestStorage
	fosite.PARStorage
	fositestorage.Transactional
}

// ClientStore manages OAuth clients as domain records.
type ClientStore interface {
	CreateClient(ctx context.Context, c *Client) error
	// ClientByID returns a copy of the client; ErrNotFound if unknown.
	ClientByID(ctx context.Context, id string) (*Client, error)
	ListClients(ctx context.Context, opts ListOptions) ([]*Client, error)
	// UpdateClient replaces the client if its stored Version equals
	// expectVersion (ErrPreconditionFailed otherwise) and bumps Version.
	UpdateClient(ctx context.Context, c *Client, expectVersion int64) error
	// DeleteClient removes the client, every token session issued to it
	// and the consents granted to it.
	DeleteClient(ctx context.Context, id string) error
}

// TokenRevoker is the incident-containment side of token storage. Each call
// also invalidates matching pending authorization codes (not counted), so a
// code issued before containment cannot be exchanged after it. A code
// exchange or refresh rotation running concurrently either commits first
// and its tokens are revoked too, or finds its code or refresh token
// inactive. An empty subject matches nothing.
type TokenRevoker interface {
	// RevokeTokensByClient deletes every access token and deactivates every
	// refresh token issued to clientID; it returns how many were affected.
	RevokeTokensByClient(ctx context.Context, clientID string) (int64, error)
	// RevokeTokensBySubject does the same for every token of a user.
	RevokeTokensBySubject(ctx context.Context, subject string) (int64, error)
	// RevokeTokensBySubjectAndClient does it for one user's grant to one
	// client (consent revocation).
	RevokeTokensBySubjectAndClient(ctx context.Context, subject, clientID string) (int64, error)
}

// MintLocker orders a mint of a user's tokens that neither exchanges a code
// nor rotates a refresh token (the device grant, RFC 8628) against
// containment, the way those two are ordered by their code or refresh
// token (postgres/doc.go, lock order).
type MintLocker interface {
	// LockMint is the first call of the transaction (BeginTX) that mints:
	// until that transaction ends, containment of subject or of clientID
	// (a disable or delete and its RevokeTokensBy*) waits for it, so it
	// sees and revokes what the mint commits. LockMint then checks, after
	// any containment that ran first has committed, that user subject
	// exists and is not disabled and that client clientID exists and is
	// not disabled: ErrOwnerDisabled otherwise, and the caller mints
	// nothing. Without a transaction in ctx it returns an error: a lock
	// that ends with its statement orders nothing.
	LockMint(ctx context.Context, subject, clientID string) error
}

// UserStore manages local users.
type UserStore interface {
	CreateUser(ctx context.Context, u *User) error
	UserByID(ctx context.Context, id string) (*User, error)
	// UserByUsername matches the username case-insensitively.
	UserByUsername(ctx context.Context, username string) (*User, error)
	ListUsers(ctx context.Context, opts ListOptions) ([]*User, error)
	UpdateUser(ctx context.Context, u *User, expectVersion int64) error
	// DeleteUser removes the user with their consents and login sessions.
	DeleteUser(ctx context.Context, id string) error
}

// ConsentStore remembers consents per user and client.
type ConsentStore interface {
	// SaveConsent creates or replaces the consent of (Subject, ClientID).
	SaveConsent(ctx context.Context, c *Consent) error
	// GrantConsent adds c.Scopes to the consent of (Subject, ClientID),
	// creating it if there is none, and sets GrantedAt and ExpiresAt. The
	// merge happens inside the store in one step, so a consent revoked
	// meanwhile is never revived with its old scopes: after a concurrent
	// RevokeConsent the result holds c.Scopes at most. On return c.Scopes
	// holds the merged set.
	GrantConsent(ctx context.Context, c *Consent) error
	GetConsent(ctx context.Context, subject, clientID string) (*Consent, error)
	ListConsents(ctx context.Context, subject string) ([]*Consent, error)
	RevokeConsent(ctx context.Context, subject, clientID string) error
}

// LoginSessionStore keeps browser sessions server-side, so sign-out and
// containment end them for real.
type LoginSessionStore interface {
	CreateLoginSession(ctx context.Context, s *LoginSession) error
	// GetLoginSession returns ErrNotFound for unknown or expired sessions.
	GetLoginSession(ctx context.Context, key string) (*LoginSession, error)
	// TouchLoginSession updates LastSeen (idle timeout).
	TouchLoginSession(ctx context.Context, key string, at time.Time) error
	DeleteLoginSession(ctx context.Context, key string) error
	DeleteLoginSessionsBySubject(ctx context.Context, subject string) (int64, error)
}

// SigningKeyStore persists the signing key ring.
type SigningKeyStore interface {
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
	// TransitionSigningKey moves kid from state `from` to `to`, setting the
	// matching timestamp to at, only if it is still in `from`; otherwise
	// ErrPreconditionFailed (another replica did it first).
	TransitionSigningKey(ctx context.Context, kid string, from, to KeyState, at time.Time) error
	// RevokeSigningKey moves kid from state `from` to revoked and, in the
	// same transaction, installs its replacement as the active key, so no
	// reader ever sees the algorithm without an active key. A replacement
	// in state KeyNext names an existing next key, which is activated at
	// `at`; one in state KeyActive is a new key, inserted. A nil
	// replacement only revokes. ErrPreconditionFailed (nothing changed)
	// when kid is no longer in `from` or the next key is no longer next.
	RevokeSigningKey(ctx context.Context, kid string, from KeyState, at time.Time, replacement *SigningKey) error
	// ResealSigningKey replaces the sealed private key bytes.
	ResealSigningKey(ctx context.Context, kid string, sealed []byte) error
	DeleteSigningKey(ctx context.Context, kid string) error
}

// APIKeyStore persists API keys.
type APIKeyStore interface {
	CreateAPIKey(ctx context.Context, k *APIKey) error
	APIKeyByID(ctx context.Context, id string) (*APIKey, error)
	ListAPIKeys(ctx context.Context, opts ListOptions) ([]*APIKey, error)
	UpdateAPIKey(ctx context.Context, k *APIKey, expectVersion int64) error
	// TouchAPIKeys records last use for many keys in one statement.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error
	// RotateAPIKey replaces old (only if its stored version is still
	// expectVersion, ErrPreconditionFailed otherwise) and inserts its
	// successor succ, atomically. It is serialized with RevokeAPIKeyChain
	// and RevokeAPIKeysByOwner for the same owner: a revocation that
	// commits first makes the rotation fail, one that commits after it
	// covers the successor. Both keys' Version fields are written back.
	RotateAPIKey(ctx context.Context, old *APIKey, expectVersion int64, succ *APIKey) error
	// RevokeAPIKeyChain revokes key id together with every key linked to
	// it by rotation (predecessors and successors, transitively) in one
	// step, erasing sealed successor secrets. It returns the keys it
	// changed (keys already revoked are left alone and not returned);
	// ErrNotFound if id is unknown.
	RevokeAPIKeyChain(ctx context.Context, id string, at time.Time) ([]*APIKey, error)
	// RevokeAPIKeysByOwner revokes every key of the owner that is not yet
	// revoked, in one step, and returns them (owner containment).
	RevokeAPIKeysByOwner(ctx context.Context, ownerType, ownerID string, at time.Time) ([]*APIKey, error)
}

// AuditStore is the append-only audit trail.
type AuditStore interface {
	AppendAudit(ctx context.Context, e *AuditEvent) error
	// ListAudit returns matching events, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)
}

// BlockStore holds temporary blocks placed by anomaly detection or admins.
type BlockStore interface {
	PutBlock(ctx context.Context, b *Block) error
	ListBlocks(ctx context.Context, now time.Time) ([]*Block, error)
	DeleteBlock(ctx context.Context, kind, value string) error
}

// AttemptStore counts attempts against a secret (password, TOTP code,
// client secret) for every replica at once, so N replicas give an attacker
// no more guesses than one. An attempt is counted BEFORE the secret is
// checked: the count returned decides whether the check may run, and
// concurrent callers each get a distinct count.
//
// Keys are stored as HashKey(key). The counters are deliberately outside
// any transaction in ctx: a counted attempt must never be rolled back.
type AttemptStore interface {
	// AddAttempt counts one attempt against key and returns the count in
	// the key's current window (1 for the first) and when that window
	// ends. A window opens at the first attempt after the previous one
	// ended and lasts `window`; attempts inside it never extend it.
	AddAttempt(ctx context.Context, key string, window time.Duration, now time.Time) (count int, windowEnd time.Time, err error)
	// RefundAttempt takes back one attempt of key's current window (a
	// successful check gives back what it reserved); it never goes below
	// zero and does nothing once the window has ended.
	RefundAttempt(ctx context.Context, key string, now time.Time) error
	// ClearAttempts forgets key's counter.
	ClearAttempts(ctx context.Context, key string) error
}

// UsedMarkStore remembers single-use values (an accepted TOTP code) for
// every replica at once.
type UsedMarkStore interface {
	// MarkUsed records key until expires and reports whether this call was
	// the first to do so: of concurrent callers exactly one gets true. A
	// mark that has expired counts as absent. Keys are stored as
	// HashKey(key); marks ignore any transaction in ctx.
	MarkUsed(ctx context.Context, key string, expires time.Time) (first bool, err error)
}

// DPoPProofStore remembers the DPoP proofs already used (RFC 9449 §11.1),
// for every replica at once, so a proof is accepted once however many
// replicas see it.
type DPoPProofStore interface {
	// UseDPoPProof records key (the proof's key thumbprint and jti) until
	// expires and reports whether this call was the first to do so: of
	// concurrent callers exactly one gets true. A recorded key stays
	// used until the janitor removes it after expires; by then the proof's
	// iat is outside the window and it is refused anyway. Keys are stored
	// as HashKey(key); recording ignores any transaction in ctx.
	UseDPoPProof(ctx context.Context, key string, expires time.Time) (first bool, err error)
}

// Locker runs scheduled work in exactly one replica.
type Locker interface {
	// TryLock takes the named lock if it is free and returns a release
	// function; ok is false when another holder has it.
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)
}

// Notifier announces changes that caches depend on (key ring, revoked API
// keys, client updates) to every replica.
type Notifier interface {
	Notify(ctx context.Context, channel, payload string) error
	// Subscribe delivers payloads published on channel until ctx ends. An
	// empty payload means notifications may have been lost (the listening
	// connection was re-established): the subscriber reloads everything.
	Subscribe(ctx context.Context, channel string) (<-chan string, error)
}

// Janitor removes what has expired, in batches.
type Janitor interface {
	// DeleteExpired removes token sessions, codes, PKCE/OIDC/PAR rows,
	// client assertion JTIs, login sessions, relying-party sessions,
	// blocks, attempt counters, used marks, device authorizations and used
	// DPoP proofs that expired before
	// `before`, at most batch rows per statement; it returns rows removed.
	DeleteExpired(ctx context.Context, before time.Time, batch int) (int64, error)
	// TrimAudit removes audit events older than before.
	TrimAudit(ctx context.Context, before time.Time, batch int) (int64, error)
}

// Store is a whole backend.
type Store interface {
	OAuth2Store
	ClientStore
	TokenRevoker
	MintLocker
	UserStore
	ConsentStore
	LoginSessionStore
	SigningKeyStore
	APIKeyStore
	AuditStore
	BlockStore
	AttemptStore
	UsedMarkStore
	DeviceStore
	DPoPProofStore
	Locker
	Notifier
	Janitor
	RegistrationStore
	BackchannelStore
	FlowStore
	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close()
}
