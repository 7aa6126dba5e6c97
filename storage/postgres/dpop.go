package postgres

import (
	"context"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// UseDPoPProof implements storage.DPoPProofStore in one statement: the
// INSERT that affects a row is the single winner, on every replica. Like
// the guards' marks it goes straight to the pool: a proof recorded inside
// a transaction that later rolls back could be replayed.
func (s *Store) UseDPoPProof(ctx context.Context, key string, expires time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO dpop_proofs (key_hash, expires_at) VALUES ($1, $2)
		ON CONFLICT (key_hash) DO NOTHING`, storage.HashKey(key), expires)
	if err != nil {
		return false, classify("postgres: use DPoP proof", err)
	}
	return tag.RowsAffected() == 1, nil
}
