package storage

import "time"

// User is a local user account. AdminScopes is non-empty for people who may
// sign in to the admin console; it lists the admin scopes they hold.
type User struct {
	ID           string   `json:"id"`
	Username     string   `json:"username"`
	Email        string   `json:"email"`
	PasswordHash string   `json:"-"`
	Disabled     bool     `json:"disabled"`
	AdminScopes  []string `json:"admin_scopes,omitempty"`
	// TOTPSecretSealed is the console second factor's secret, sealed with
	// the master secret. Empty when TOTP is not enrolled.
	TOTPSecretSealed []byte    `json:"-"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	Version          int64     `json:"-"`
}

// Consent remembers that a user granted a client a set of scopes.
type Consent struct {
	Subject   string    `json:"subject"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	GrantedAt time.Time `json:"granted_at"`
	// ExpiresAt zero means the consent does not expire.
	ExpiresAt time.Time `json:"expires_at"`
}

// LoginSession is a server-side browser session. The cookie holds a random
// id; the store holds only HashKey(id), so a database dump does not log
// anyone in. Kind separates the public login ("public") from the admin
// console ("console").
type LoginSession struct {
	Key  string
	Kind string
	// SID identifies the session to relying parties (the sid claim of ID
	// and logout tokens). It is random, unrelated to Key, and empty for
	// console sessions.
	SID       string
	Subject   string
	AuthTime  time.Time
	LastSeen  time.Time
	ExpiresAt time.Time
	// Data holds small per-kind state (CSRF secret, pending TOTP step).
	Data map[string]string
}

// KeyState is a signing key's place in its life cycle.
type KeyState string

// Signing key states. Keys move next → active → retired, and any state can
// move to revoked.
const (
	KeyNext    KeyState = "next"
	KeyActive  KeyState = "active"
	KeyRetired KeyState = "retired"
	KeyRevoked KeyState = "revoked"
)

// SigningKey is one key of the signing key ring. The private key is only
// ever stored sealed (AES-256-GCM under the master secret, kid as AAD).
type SigningKey struct {
	KID       string   `json:"kid"`
	Algorithm string   `json:"alg"`
	State     KeyState `json:"state"`
	// PublicJWK is the JSON encoding of the public JWK.
	PublicJWK     []byte    `json:"-"`
	SealedPrivate []byte    `json:"-"`
	CreatedAt     time.Time `json:"created_at"`
	// ActivateAt is when a next key is scheduled to start signing.
	ActivateAt  time.Time `json:"activate_at"`
	ActivatedAt time.Time `json:"activated_at"`
	RetiredAt   time.Time `json:"retired_at"`
	RevokedAt   time.Time `json:"revoked_at"`
	// DeleteAfter is when a retired key may leave the JWKS for good.
	DeleteAfter time.Time `json:"delete_after"`
}

// APIKeyStatus is an API key's life-cycle state.
type APIKeyStatus string

// API key states.
const (
	APIKeyActive   APIKeyStatus = "active"
	APIKeyRotating APIKeyStatus = "rotating"
	APIKeyRevoked  APIKeyStatus = "revoked"
	APIKeyExpired  APIKeyStatus = "expired"
)

// APIKey is a long-lived credential for machine callers. Only the Argon2id
// PHC string of its secret is stored.
type APIKey struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	OwnerType string       `json:"owner_type"`
	OwnerID   string       `json:"owner_id"`
	Scopes    []string     `json:"scopes"`
	Hash      string       `json:"-"`
	Status    APIKeyStatus `json:"status"`
	CreatedBy string       `json:"created_by"`
	CreatedAt time.Time    `json:"created_at"`
	ExpiresAt time.Time    `json:"expires_at"`
	// LastUsedAt is updated in batches, not on every request.
	LastUsedAt     time.Time     `json:"last_used_at"`
	RevokedAt      time.Time     `json:"revoked_at"`
	RotationPeriod time.Duration `json:"rotation_period"`
	GracePeriod    time.Duration `json:"grace_period"`
	// RotateAt is when the scheduler next rotates this key.
	RotateAt time.Time `json:"rotate_at"`
	// ReplacesID links a successor to the key it replaced; ReplacedByID the
	// other way.
	ReplacesID   string `json:"replaces_id,omitempty"`
	ReplacedByID string `json:"replaced_by_id,omitempty"`
	// SealedSuccessorSecret holds the successor's secret, sealed with the
	// master secret, until the holder collects it once; then it is erased.
	SealedSuccessorSecret []byte `json:"-"`
	Version               int64  `json:"-"`
}

// AuditEvent is one security-relevant event. Nothing secret goes in here.
type AuditEvent struct {
	ID        int64             `json:"id"`
	Time      time.Time         `json:"time"`
	Event     string            `json:"event"`
	Actor     string            `json:"actor"`
	SourceIP  string            `json:"source_ip"`
	UserAgent string            `json:"user_agent"`
	ClientID  string            `json:"client_id"`
	Subject   string            `json:"subject"`
	Outcome   string            `json:"outcome"`
	RequestID string            `json:"request_id"`
	Details   map[string]string `json:"details,omitempty"`
}

// AuditFilter selects audit events; zero fields do not filter.
type AuditFilter struct {
	Since, Until time.Time
	Actor        string
	Event        string
	ClientID     string
	// BeforeID pages backwards: only events with ID < BeforeID.
	BeforeID int64
	Limit    int
}

// ListOptions pages through a listing ordered by id. After is the last id of
// the previous page.
type ListOptions struct {
	After string
	Limit int
	// NameContains filters by a case-insensitive substring of the name
	// (client_name, username, key name).
	NameContains string
}

// Block is a temporary block of a source (an IP or a client id) placed by
// anomaly detection or an admin.
type Block struct {
	Kind      string    `json:"kind"` // "ip" or "client"
	Value     string    `json:"value"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}
