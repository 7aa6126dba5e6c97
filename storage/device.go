package storage

import (
	"context"
	"time"
)

// DeviceStatus is where a device authorization (RFC 8628) stands.
type DeviceStatus string

// Device authorization states. A request starts pending; the user's answer
// moves it to approved or denied exactly once; the one poll that finds it
// approved moves it to issued and mints the tokens.
const (
	DevicePending  DeviceStatus = "pending"
	DeviceApproved DeviceStatus = "approved"
	DeviceDenied   DeviceStatus = "denied"
	DeviceIssued   DeviceStatus = "issued"
)

// DevicePollOutcome is what one poll of the token endpoint decided.
type DevicePollOutcome string

// Poll outcomes (RFC 8628 §3.5).
const (
	// PollPending: the user has not answered yet (authorization_pending).
	PollPending DevicePollOutcome = "pending"
	// PollSlowDown: the device polled before its interval had passed; the
	// interval grew by DeviceSlowDownStep (slow_down).
	PollSlowDown DevicePollOutcome = "slow_down"
	// PollDenied: the user denied (access_denied).
	PollDenied DevicePollOutcome = "denied"
	// PollExpired: the device code expired (expired_token).
	PollExpired DevicePollOutcome = "expired"
	// PollIssued: this poll, and no other, consumed the approval.
	PollIssued DevicePollOutcome = "issued"
	// PollUsed: an earlier (or concurrent) poll already consumed it.
	PollUsed DevicePollOutcome = "used"
)

// DevicePollLeeway forgives network jitter: a poll counts as too fast
// only when it comes more than this much before the interval has passed,
// so a client that waits exactly the interval is never told slow_down.
const DevicePollLeeway = time.Second

// DeviceSlowDownStep is how much the polling interval grows after each
// slow_down (RFC 8628 §3.5: "by 5 seconds").
const DeviceSlowDownStep = 5 * time.Second

// DeviceAuthorization is one device authorization request (RFC 8628 §3.1).
// Neither code is stored in clear: the device code is a high-entropy
// secret kept as HashKey(device code); the user code is kept as
// HashKey(normalized user code) plus its first half (UserCodeHint) so an
// operator can match a code a user reads out without the console holding
// a usable code.
type DeviceAuthorization struct {
	DeviceCodeHash string
	UserCodeHash   string
	UserCodeHint   string
	ClientID       string
	// RequestID is the grant family of the tokens it will issue.
	RequestID string
	Scopes    []string
	Audience  []string
	Status    DeviceStatus
	// Subject is the user who approved or denied; empty while pending.
	Subject string
	// Request is the approved grant (the EncodeRequest document with the
	// user's session and granted scopes), set on approval only.
	Request []byte
	// Interval is the minimum time between polls; it grows on slow_down.
	Interval     time.Duration
	LastPolledAt time.Time
	// LastOutcome is what the latest poll decided (empty before any poll).
	LastOutcome DevicePollOutcome
	CreatedAt   time.Time
	DecidedAt   time.Time
	ExpiresAt   time.Time
}

// DeviceStore keeps device authorizations. Every transition is decided by
// one atomic step, so N replicas are as strict as one:
//   - DecideDeviceAuthorization moves a pending, unexpired request to
//     approved or denied; of concurrent decisions exactly one wins, the
//     others get ErrPreconditionFailed and change nothing.
//   - PollDeviceAuthorization records the poll and, for an approved
//     request, consumes it: of concurrent polls exactly one sees
//     PollIssued, the others PollUsed.
//
// Rows are removed by DeleteExpired once they expire.
type DeviceStore interface {
	// CreateDeviceAuthorization stores d (Status pending, CreatedAt and
	// LastPolledAt as given). ErrConflict when its device code or user
	// code hash is already taken (the caller draws new codes).
	CreateDeviceAuthorization(ctx context.Context, d *DeviceAuthorization) error
	// DeviceAuthorizationByUserCode returns the pending, unexpired request
	// with this user code hash; ErrNotFound otherwise (unknown, expired,
	// already answered: all look the same to a guesser).
	DeviceAuthorizationByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*DeviceAuthorization, error)
	// DecideDeviceAuthorization approves (request non-nil: the encoded
	// grant) or denies (request nil) the pending, unexpired request with
	// this user code hash on behalf of subject, and returns it as decided.
	// ErrPreconditionFailed when it is unknown, expired or already decided.
	DecideDeviceAuthorization(ctx context.Context, userCodeHash, subject string, request []byte, now time.Time) (*DeviceAuthorization, error)
	// PollDeviceAuthorization records a poll by clientID of the device code
	// with this hash at now and returns the request with LastOutcome set
	// to what this poll decided. ErrNotFound for an unknown device code or
	// one issued to another client. The outcome is, in this order:
	// PollExpired once expired; PollDenied; PollUsed once issued;
	// PollIssued for an approved request; PollSlowDown when the previous
	// poll was less than Interval - DevicePollLeeway ago (Interval then
	// grows by DeviceSlowDownStep); PollPending otherwise.
	PollDeviceAuthorization(ctx context.Context, deviceCodeHash, clientID string, now time.Time) (*DeviceAuthorization, error)
	// ListDeviceAuthorizations returns unexpired requests, newest first
	// (the console's view). A non-positive limit means no limit.
	ListDeviceAuthorizations(ctx context.Context, now time.Time, limit int) ([]*DeviceAuthorization, error)
}

// GrantTypeDeviceCode is the grant type of RFC 8628 §3.4; a client needs
// it in grant_types to use the device authorization endpoint.
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code" // #nosec G101 -- a URN, not a credential
