package storage

import (
	"context"
	"time"
)

// BackchannelChannel is the Notifier channel on which every backend
// announces that logouts were queued (BackchannelStore.QueueLogouts), so
// delivery workers wake at once instead of at their next poll. The
// announcement is made when the queuing transaction commits, never before.
const BackchannelChannel = "bulwark_backchannel"

// BackchannelQueued is the payload of a BackchannelChannel announcement.
const BackchannelQueued = "queued"

// LogoutMatch selects the relying-party sessions a logout ends (OpenID
// Connect Back-Channel Logout 1.0). Subject and SID narrow the match; at
// least one of them must be set, otherwise nothing matches. ClientID
// narrows it to one relying party (consent revocation).
type LogoutMatch struct {
	// Subject is the user whose sessions end (user disabled, password
	// reset, sessions revoked, consent revoked).
	Subject string
	// SID is the one login session that ends (RP-initiated logout).
	SID string
	// ClientID limits the match to one client.
	ClientID string
	// Reason names the cause in the audit trail ("logout",
	// "user_disabled", "password_reset", "sessions_revoked",
	// "consent_revoked", ...).
	Reason string
}

// Empty reports whether m matches nothing.
func (m LogoutMatch) Empty() bool { return m.Subject == "" && m.SID == "" }

// BackchannelLogout is one queued logout token delivery: one relying party
// (client) to tell that a user's session ended. The token itself is signed
// at delivery time; the row holds what goes into it.
type BackchannelLogout struct {
	ID       int64
	ClientID string
	Subject  string
	// SID is the login session id, empty when the logout covers every
	// session of Subject at this client (clients that do not require sid,
	// told of a user-wide event).
	SID string
	// JTI is the logout token's id, the same on every attempt, so a relying
	// party that got an earlier attempt recognises the repeat.
	JTI       string
	Reason    string
	CreatedAt time.Time
	// NextAttemptAt is when the row is due.
	NextAttemptAt time.Time
	// Attempts counts failed deliveries.
	Attempts  int
	LastError string
	// Lease is the claim token of the worker holding the row, valid until
	// LeaseUntil; empty when unclaimed.
	Lease      string
	LeaseUntil time.Time
}

// BackchannelStore is the durable outbox of OpenID Connect Back-Channel
// Logout 1.0: which relying parties hold a session derived from which
// login session, and the logout tokens still to deliver.
//
// Semantics every backend honours (checked by storagetest):
//   - JoinLoginSession records the RP session only while the login session
//     lives, and serialises with its deletion: a logout that deletes the
//     login session either sees the record (and queues a logout for it) or
//     makes the join fail with ErrNotFound.
//   - QueueLogouts removes the matching RP sessions and queues one row per
//     ended session and client that has a back-channel logout URI, in one
//     atomic step inside the caller's transaction (so the row commits or
//     rolls back with the state change that caused it). Of concurrent calls
//     matching the same RP session exactly one queues it.
//   - ClaimLogouts leases due rows atomically: of concurrent claimers (any
//     number of replicas) each row goes to exactly one until its lease
//     ends; a row whose lease ended (its worker died) is due again.
//   - FinishLogout and ReleaseLogout act only while the caller's lease is
//     still the row's lease; otherwise they change nothing and report
//     false.
type BackchannelStore interface {
	// JoinLoginSession records that clientID holds a session derived from
	// the live login session keyed loginKey (as GetLoginSession takes it)
	// and returns that session's SID. ErrNotFound when the login session
	// is gone or expired, or has no SID.
	JoinLoginSession(ctx context.Context, loginKey, clientID string) (sid string, err error)
	// QueueLogouts ends the RP sessions m matches and queues their logouts
	// (see the interface comment); it returns how many rows it queued.
	// The SID of a row is the session's, except that for a match without
	// SID (a user-wide event) a client that does not require sid gets one
	// row for the subject instead of one per session.
	QueueLogouts(ctx context.Context, m LogoutMatch) (int64, error)
	// ClaimLogouts leases up to limit due rows (NextAttemptAt <= now, no
	// live lease) to lease until `until`, oldest due first.
	ClaimLogouts(ctx context.Context, lease string, until time.Time, limit int) ([]*BackchannelLogout, error)
	// FinishLogout deletes row id (delivered, or given up on).
	FinishLogout(ctx context.Context, id int64, lease string) (bool, error)
	// ReleaseLogout ends the lease and makes row id due again at next. A
	// non-empty failure counts a failed attempt and is kept as LastError.
	ReleaseLogout(ctx context.Context, id int64, lease string, next time.Time, failure string) (bool, error)
	// PendingLogouts counts queued rows (a gauge).
	PendingLogouts(ctx context.Context) (int64, error)
}
