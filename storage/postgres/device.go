package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-auth/bulwark/storage"
)

// Device authorizations (RFC 8628, migration 0009). Every transition is one
// UPDATE … WHERE … RETURNING on the row: its row lock serialises
// concurrent callers and READ COMMITTED re-evaluates the WHERE clause and
// the SET expressions on the row a previous holder committed, so the
// statement's own result says what this caller decided.

const deviceColumns = `device_code_hash, user_code_hash, user_code_hint, client_id, request_id, scopes, audience,
	status, subject, request, interval_seconds, last_polled_at, last_outcome, created_at, decided_at, expires_at`

func scanDevice(row pgx.Row) (*storage.DeviceAuthorization, error) {
	var (
		d                 storage.DeviceAuthorization
		status, outcome   string
		interval          int
		polled, decided   *time.Time
		request           []byte
		scopes, audiences []string
	)
	if err := row.Scan(&d.DeviceCodeHash, &d.UserCodeHash, &d.UserCodeHint, &d.ClientID, &d.RequestID, &scopes, &audiences,
		&status, &d.Subject, &request, &interval, &polled, &outcome, &d.CreatedAt, &decided, &d.ExpiresAt); err != nil {
		return nil, err
	}
	d.Scopes, d.Audience = nilIfEmpty(scopes), nilIfEmpty(audiences)
	d.Status, d.LastOutcome = storage.DeviceStatus(status), storage.DevicePollOutcome(outcome)
	d.Request = request
	d.Interval = time.Duration(interval) * time.Second
	d.LastPolledAt, d.DecidedAt = fromNull(polled), fromNull(decided)
	return &d, nil
}

// CreateDeviceAuthorization implements storage.DeviceStore.
func (s *Store) CreateDeviceAuthorization(ctx context.Context, d *storage.DeviceAuthorization) error {
	if d.CreatedAt.IsZero() {
		d.CreatedAt = s.now()
	}
	d.Status = storage.DevicePending
	_, err := s.q(ctx).Exec(ctx, `INSERT INTO device_authorizations
		(device_code_hash, user_code_hash, user_code_hint, client_id, request_id, scopes, audience,
		 interval_seconds, last_polled_at, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		d.DeviceCodeHash, d.UserCodeHash, d.UserCodeHint, d.ClientID, d.RequestID, nonNil(d.Scopes), nonNil(d.Audience),
		int(d.Interval/time.Second), nullTime(d.LastPolledAt), d.CreatedAt, d.ExpiresAt)
	return classify("postgres: create device authorization", err)
}

// DeviceAuthorizationByUserCode implements storage.DeviceStore.
func (s *Store) DeviceAuthorizationByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.DeviceAuthorization, error) {
	d, err := scanDevice(s.q(ctx).QueryRow(ctx, `SELECT `+deviceColumns+` FROM device_authorizations
		WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2`, userCodeHash, now))
	if err != nil {
		return nil, classify("postgres: device authorization by user code", err)
	}
	return d, nil
}

// DecideDeviceAuthorization implements storage.DeviceStore: one UPDATE,
// only while pending and unexpired.
func (s *Store) DecideDeviceAuthorization(ctx context.Context, userCodeHash, subject string, request []byte, now time.Time) (*storage.DeviceAuthorization, error) {
	status := storage.DeviceDenied
	if request != nil {
		status = storage.DeviceApproved
	}
	d, err := scanDevice(s.q(ctx).QueryRow(ctx, `UPDATE device_authorizations
		SET status = $2, subject = $3, request = $4, decided_at = $5
		WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $5
		RETURNING `+deviceColumns, userCodeHash, string(status), subject, request, now))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrPreconditionFailed
	}
	if err != nil {
		return nil, classify("postgres: decide device authorization", err)
	}
	return d, nil
}

// pollOutcome is the decision of one poll, computed from the row as it is
// when the UPDATE takes its lock. Every SET expression of an UPDATE reads
// the row's previous values, so repeating it in each of them decides the
// outcome, the interval and the status change together.
const pollOutcome = `(CASE
	WHEN expires_at <= $3 THEN 'expired'
	WHEN status = 'denied' THEN 'denied'
	WHEN status = 'issued' THEN 'used'
	WHEN status = 'approved' THEN 'issued'
	WHEN last_polled_at IS NOT NULL AND $3 < last_polled_at + make_interval(secs => interval_seconds - $5) THEN 'slow_down'
	ELSE 'pending' END)`

// PollDeviceAuthorization implements storage.DeviceStore in one UPDATE:
// concurrent polls queue on the row lock, and each re-reads the row the
// previous one committed, so exactly one sees 'approved' and consumes it.
// last_outcome carries this statement's decision back.
func (s *Store) PollDeviceAuthorization(ctx context.Context, deviceCodeHash, clientID string, now time.Time) (*storage.DeviceAuthorization, error) {
	d, err := scanDevice(s.q(ctx).QueryRow(ctx, `UPDATE device_authorizations SET
		last_outcome     = `+pollOutcome+`,
		last_polled_at   = $3,
		interval_seconds = CASE WHEN `+pollOutcome+` = 'slow_down' THEN interval_seconds + $4 ELSE interval_seconds END,
		status           = CASE WHEN `+pollOutcome+` = 'issued' THEN 'issued' ELSE status END
	WHERE device_code_hash = $1 AND client_id = $2
	RETURNING `+deviceColumns, deviceCodeHash, clientID, now, int(storage.DeviceSlowDownStep/time.Second),
		int(storage.DevicePollLeeway/time.Second)))
	if err != nil {
		return nil, classify("postgres: poll device authorization", err)
	}
	return d, nil
}

// ListDeviceAuthorizations implements storage.DeviceStore.
func (s *Store) ListDeviceAuthorizations(ctx context.Context, now time.Time, limit int) ([]*storage.DeviceAuthorization, error) {
	rows, err := s.q(ctx).Query(ctx, `SELECT `+deviceColumns+` FROM device_authorizations
		WHERE expires_at > $1 ORDER BY created_at DESC, device_code_hash LIMIT $2`, now, limitArg(limit))
	if err != nil {
		return nil, classify("postgres: list device authorizations", err)
	}
	defer rows.Close()
	var out []*storage.DeviceAuthorization
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, classify("postgres: list device authorizations", err)
		}
		out = append(out, d)
	}
	return out, classify("postgres: list device authorizations", rows.Err())
}
