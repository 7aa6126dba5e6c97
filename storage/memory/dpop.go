package memory

import (
	"context"
	"sync"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// dpopState holds used DPoP proofs under their own mutex, outside the
// transaction journal, as Postgres keeps them outside any transaction.
// The zero value is ready to use.
type dpopState struct {
	mu     sync.Mutex
	proofs map[string]time.Time
}

// UseDPoPProof implements storage.DPoPProofStore: a recorded key stays
// used until the janitor removes it, exactly like the Postgres row.
func (s *Store) UseDPoPProof(_ context.Context, key string, expires time.Time) (bool, error) {
	d := &s.dpop
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proofs == nil {
		d.proofs = map[string]time.Time{}
	}
	k := storage.HashKey(key)
	if _, used := d.proofs[k]; used {
		return false, nil
	}
	d.proofs[k] = expires
	return true, nil
}

// deleteExpired is the janitor's share of dpopState.
func (d *dpopState) deleteExpired(before time.Time) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for k, exp := range d.proofs {
		if exp.Before(before) {
			delete(d.proofs, k)
			n++
		}
	}
	return n
}
