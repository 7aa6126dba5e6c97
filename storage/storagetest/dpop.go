package storagetest

import (
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// dpopTests pin the used-proof record of RFC 9449 §11.1: a proof is
// accepted once, by exactly one of any number of concurrent callers (every
// replica shares the store), a rolled-back transaction does not forget it,
// and the janitor removes it only after it expired.
var dpopTests = []test{
	{"DPoPProofUsedOnce", func(t *testing.T, s storage.Store) {
		exp := now().Add(2 * time.Minute)
		first, err := s.UseDPoPProof(ctx(t), "dpop\x00jkt-a\x00jti-1", exp)
		must(t, err)
		again, err := s.UseDPoPProof(ctx(t), "dpop\x00jkt-a\x00jti-1", exp)
		must(t, err)
		// The same jti under another key is another proof.
		otherKey, err := s.UseDPoPProof(ctx(t), "dpop\x00jkt-b\x00jti-1", exp)
		must(t, err)
		if !first || again || !otherKey {
			t.Fatalf("first %v, again %v, other key %v; want true, false, true", first, again, otherKey)
		}
		// A used proof stays used until the janitor removes it, even past
		// its expiry: replaying it is refused by the store and by iat.
		past, err := s.UseDPoPProof(ctx(t), "dpop\x00old", now().Add(-time.Minute))
		must(t, err)
		replay, err := s.UseDPoPProof(ctx(t), "dpop\x00old", exp)
		must(t, err)
		if !past || replay {
			t.Fatalf("expired proof: first %v, replay %v; want true, false", past, replay)
		}
	}},
	{"DPoPProofConcurrentOneWinner", func(t *testing.T, s storage.Store) {
		const n = 30
		exp := now().Add(time.Minute)
		type res struct {
			first bool
			err   error
		}
		out := Together(n, func(int) res {
			f, err := s.UseDPoPProof(ctx(t), "dpop\x00race", exp)
			return res{f, err}
		})
		for _, r := range out {
			must(t, r.err)
		}
		if w := Count(out, func(r res) bool { return r.first }); w != 1 {
			t.Fatalf("%d winners, want exactly 1", w)
		}
	}},
	{"DPoPProofIgnoresTransactions", func(t *testing.T, s storage.Store) {
		tx, err := s.BeginTX(ctx(t))
		must(t, err)
		first, err := s.UseDPoPProof(tx, "dpop\x00tx", now().Add(time.Minute))
		must(t, err)
		must(t, s.Rollback(tx))
		again, err := s.UseDPoPProof(ctx(t), "dpop\x00tx", now().Add(time.Minute))
		must(t, err)
		if !first || again {
			t.Fatalf("first %v, after rollback %v; want true, false", first, again)
		}
	}},
	{"JanitorRemovesExpiredDPoPProofs", func(t *testing.T, s storage.Store) {
		at := now()
		_, err := s.UseDPoPProof(ctx(t), "dpop\x00gone", at.Add(-time.Second))
		must(t, err)
		_, err = s.UseDPoPProof(ctx(t), "dpop\x00kept", at.Add(time.Minute))
		must(t, err)
		n, err := s.DeleteExpired(ctx(t), at, 100)
		must(t, err)
		if n != 1 {
			t.Fatalf("DeleteExpired removed %d rows, want 1", n)
		}
		if first, _ := s.UseDPoPProof(ctx(t), "dpop\x00kept", at.Add(time.Minute)); first {
			t.Fatal("a live proof was forgotten")
		}
		if first, _ := s.UseDPoPProof(ctx(t), "dpop\x00gone", at.Add(time.Minute)); !first {
			t.Fatal("the expired proof was not removed")
		}
	}},
}
