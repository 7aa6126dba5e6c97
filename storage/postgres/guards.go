package postgres

import (
	"context"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// Attempt counters and used marks go straight to the pool, never through
// q(ctx): an attempt counted inside a transaction that later rolls back
// would hand the attacker a free guess.

// AddAttempt implements storage.AttemptStore in one statement. The row lock
// taken by ON CONFLICT DO UPDATE serialises concurrent callers, so N of
// them get the counts 1..N, each exactly once, on every replica.
func (s *Store) AddAttempt(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	var (
		n   int
		end time.Time
	)
	err := s.pool.QueryRow(ctx, `INSERT INTO attempt_counters AS a (key_hash, count, expires_at) VALUES ($1, 1, $3)
		ON CONFLICT (key_hash) DO UPDATE SET
			count      = CASE WHEN a.expires_at <= $2 THEN 1 ELSE a.count + 1 END,
			expires_at = CASE WHEN a.expires_at <= $2 THEN EXCLUDED.expires_at ELSE a.expires_at END
		RETURNING count, expires_at`,
		storage.HashKey(key), now, now.Add(window)).Scan(&n, &end)
	if err != nil {
		return 0, time.Time{}, classify("postgres: add attempt", err)
	}
	return n, end, nil
}

// RefundAttempt implements storage.AttemptStore.
func (s *Store) RefundAttempt(ctx context.Context, key string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE attempt_counters SET count = count - 1
		WHERE key_hash = $1 AND count > 0 AND expires_at > $2`, storage.HashKey(key), now)
	return classify("postgres: refund attempt", err)
}

// ClearAttempts implements storage.AttemptStore.
func (s *Store) ClearAttempts(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM attempt_counters WHERE key_hash = $1`, storage.HashKey(key))
	return classify("postgres: clear attempts", err)
}

// MarkUsed implements storage.UsedMarkStore: the INSERT (or the takeover
// of an expired row) that affects a row is the single winner.
func (s *Store) MarkUsed(ctx context.Context, key string, expires time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO used_marks (key_hash, expires_at) VALUES ($1, $2)
		ON CONFLICT (key_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at
		WHERE used_marks.expires_at <= $3`,
		storage.HashKey(key), expires, s.now())
	if err != nil {
		return false, classify("postgres: mark used", err)
	}
	return tag.RowsAffected() == 1, nil
}
