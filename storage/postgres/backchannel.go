package postgres

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-auth/bulwark/storage"
)

// JoinLoginSession implements storage.BackchannelStore. The login session
// row is read FOR SHARE inside the INSERT: a concurrent deletion (logout,
// containment) either waits for this statement and then, in its next
// statement, finds the RP session to queue, or has already deleted the row
// and this statement inserts nothing (ErrNotFound).
func (s *Store) JoinLoginSession(ctx context.Context, loginKey, clientID string) (string, error) {
	var sid string
	err := s.q(ctx).QueryRow(ctx, `INSERT INTO rp_sessions AS r (sid, client_id, subject, expires_at)
		SELECT l.sid, $2, l.subject, l.expires_at FROM login_sessions l
		WHERE l.key = $1 AND l.expires_at > $3 AND l.sid <> ''
		FOR SHARE
		ON CONFLICT (sid, client_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
		RETURNING r.sid`, storage.HashKey(loginKey), clientID, s.now()).Scan(&sid)
	if err != nil {
		return "", classify("postgres: join login session", err)
	}
	return sid, nil
}

// QueueLogouts implements storage.BackchannelStore in one statement: the
// DELETE … RETURNING of the matching RP sessions decides which sessions
// this call ends (a concurrent call matching the same rows gets none of
// them), and the INSERT of the outbox rows runs in the same statement, so
// in the caller's transaction when there is one.
func (s *Store) QueueLogouts(ctx context.Context, m storage.LogoutMatch) (int64, error) {
	if m.Empty() {
		return 0, nil
	}
	tag, err := s.q(ctx).Exec(ctx, `WITH ended AS (
			DELETE FROM rp_sessions
			WHERE ($1 = '' OR subject = $1) AND ($2 = '' OR sid = $2) AND ($3 = '' OR client_id = $3)
			RETURNING sid, client_id, subject
		), targets AS (
			SELECT DISTINCT e.client_id, e.subject,
				CASE WHEN $2 <> '' OR c.backchannel_logout_session_required THEN e.sid ELSE '' END AS sid
			FROM ended e JOIN clients c ON c.id = e.client_id
			WHERE c.backchannel_logout_uri <> ''
		)
		INSERT INTO backchannel_logouts (client_id, subject, sid, jti, reason, created_at, next_attempt_at)
		SELECT client_id, subject, sid, gen_random_uuid()::text, $4, $5, $5 FROM targets`,
		m.Subject, m.SID, m.ClientID, m.Reason, s.now())
	if err != nil {
		return 0, classify("postgres: queue logouts", err)
	}
	return tag.RowsAffected(), nil
}

const logoutSelect = `b.id, b.client_id, b.subject, b.sid, b.jti, b.reason, b.created_at, b.next_attempt_at,
	b.attempts, b.last_error, b.lease, b.lease_until`

// ClaimLogouts implements storage.BackchannelStore: one UPDATE whose
// subquery locks due rows FOR UPDATE SKIP LOCKED, so concurrent claimers
// on any number of replicas never take the same row, and a row whose lease
// ran out (its worker died) is due again.
func (s *Store) ClaimLogouts(ctx context.Context, lease string, until time.Time, limit int) ([]*storage.BackchannelLogout, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.q(ctx).Query(ctx, `UPDATE backchannel_logouts b SET lease = $1, lease_until = $2
		FROM (SELECT id FROM backchannel_logouts
			WHERE next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
			ORDER BY next_attempt_at, id LIMIT $4
			FOR UPDATE SKIP LOCKED) due
		WHERE b.id = due.id
		RETURNING `+logoutSelect, lease, until, s.now(), limit)
	if err != nil {
		return nil, classify("postgres: claim logouts", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*storage.BackchannelLogout, error) {
		var (
			l     storage.BackchannelLogout
			until *time.Time
		)
		err := row.Scan(&l.ID, &l.ClientID, &l.Subject, &l.SID, &l.JTI, &l.Reason, &l.CreatedAt, &l.NextAttemptAt,
			&l.Attempts, &l.LastError, &l.Lease, &until)
		l.LeaseUntil = fromNull(until)
		return &l, err
	})
	if err != nil {
		return nil, classify("postgres: claim logouts", err)
	}
	slices.SortFunc(out, func(a, b *storage.BackchannelLogout) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// FinishLogout implements storage.BackchannelStore.
func (s *Store) FinishLogout(ctx context.Context, id int64, lease string) (bool, error) {
	tag, err := s.q(ctx).Exec(ctx, `DELETE FROM backchannel_logouts WHERE id = $1 AND lease = $2 AND lease <> ''`, id, lease)
	if err != nil {
		return false, classify("postgres: finish logout", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseLogout implements storage.BackchannelStore.
func (s *Store) ReleaseLogout(ctx context.Context, id int64, lease string, next time.Time, failure string) (bool, error) {
	tag, err := s.q(ctx).Exec(ctx, `UPDATE backchannel_logouts SET lease = '', lease_until = NULL, next_attempt_at = $3,
			attempts = attempts + CASE WHEN $4 <> '' THEN 1 ELSE 0 END,
			last_error = CASE WHEN $4 <> '' THEN $4 ELSE last_error END
		WHERE id = $1 AND lease = $2 AND lease <> ''`, id, lease, next, failure)
	if err != nil {
		return false, classify("postgres: release logout", err)
	}
	return tag.RowsAffected() == 1, nil
}

// PendingLogouts implements storage.BackchannelStore.
func (s *Store) PendingLogouts(ctx context.Context) (int64, error) {
	var n int64
	if err := s.q(ctx).QueryRow(ctx, `SELECT count(*) FROM backchannel_logouts`).Scan(&n); err != nil {
		return 0, classify("postgres: pending logouts", err)
	}
	return n, nil
}
