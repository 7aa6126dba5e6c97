package storagetest

import (
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// guardTests pin the state that guards secrets: attempt counters counted
// before the check, and single-use marks. Both must hold under concurrency
// on one store, because every replica shares it.
var guardTests = []test{
	{"AttemptsCountWithinWindow", func(t *testing.T, s storage.Store) {
		at := now()
		for want := 1; want <= 3; want++ {
			n, end, err := s.AddAttempt(ctx(t), "login\x00alice", time.Minute, at.Add(time.Duration(want)*time.Second))
			must(t, err)
			if n != want || !end.Equal(at.Add(time.Second+time.Minute)) {
				t.Fatalf("attempt %d: got count %d, window end %v; want window end %v", want, n, end, at.Add(time.Second+time.Minute))
			}
		}
		// Another key has its own counter.
		if n, _, err := s.AddAttempt(ctx(t), "login\x00bob", time.Minute, at); err != nil || n != 1 {
			t.Fatalf("other key: %d, %v", n, err)
		}
		// The first attempt at or after the window's end opens a new one.
		n, end, err := s.AddAttempt(ctx(t), "login\x00alice", time.Minute, at.Add(time.Second+time.Minute))
		must(t, err)
		if n != 1 || !end.Equal(at.Add(time.Second+2*time.Minute)) {
			t.Fatalf("new window: count %d end %v", n, end)
		}
	}},
	{"AttemptsRefundAndClear", func(t *testing.T, s storage.Store) {
		at := now()
		for range 3 {
			_, _, err := s.AddAttempt(ctx(t), "k", time.Minute, at)
			must(t, err)
		}
		must(t, s.RefundAttempt(ctx(t), "k", at))
		if n, _, _ := s.AddAttempt(ctx(t), "k", time.Minute, at); n != 3 {
			t.Fatalf("after a refund the next attempt is %d, want 3", n)
		}
		// A refund never goes below zero, and one for an unknown key or an
		// ended window changes nothing.
		must(t, s.RefundAttempt(ctx(t), "unknown", at))
		for range 5 {
			must(t, s.RefundAttempt(ctx(t), "k", at))
		}
		if n, _, _ := s.AddAttempt(ctx(t), "k", time.Minute, at); n != 1 {
			t.Fatalf("after refunds past zero the next attempt is %d, want 1", n)
		}
		must(t, s.RefundAttempt(ctx(t), "k", at.Add(time.Hour)))
		must(t, s.ClearAttempts(ctx(t), "k"))
		if n, _, _ := s.AddAttempt(ctx(t), "k", time.Minute, at); n != 1 {
			t.Fatalf("after clear the next attempt is %d, want 1", n)
		}
		must(t, s.ClearAttempts(ctx(t), "unknown"))
	}},
	{"AttemptsConcurrentEachCountOnce", func(t *testing.T, s storage.Store) {
		// N callers released together get 1..N, each exactly once: the
		// count is reserved before any secret is checked, so no two
		// callers can both believe they are under a limit.
		const n = 40
		at := now()
		type res struct {
			n   int
			err error
		}
		out := Together(n, func(int) res {
			c, _, err := s.AddAttempt(ctx(t), "burst", 15*time.Minute, at)
			return res{c, err}
		})
		seen := map[int]bool{}
		for _, r := range out {
			must(t, r.err)
			if r.n < 1 || r.n > n || seen[r.n] {
				t.Fatalf("count %d out of range or repeated; all: %v", r.n, out)
			}
			seen[r.n] = true
		}
	}},
	{"AttemptsIgnoreTransactions", func(t *testing.T, s storage.Store) {
		// A counted attempt survives a rolled-back transaction.
		at := now()
		tx, err := s.BeginTX(ctx(t))
		must(t, err)
		_, _, err = s.AddAttempt(tx, "tx-key", time.Minute, at)
		must(t, err)
		must(t, s.Rollback(tx))
		if n, _, _ := s.AddAttempt(ctx(t), "tx-key", time.Minute, at); n != 2 {
			t.Fatalf("attempt after rollback is %d, want 2", n)
		}
	}},
	{"MarkUsedOnce", func(t *testing.T, s storage.Store) {
		exp := now().Add(time.Minute)
		first, err := s.MarkUsed(ctx(t), "totp\x00u1\x00123", exp)
		must(t, err)
		again, err := s.MarkUsed(ctx(t), "totp\x00u1\x00123", exp)
		must(t, err)
		other, err := s.MarkUsed(ctx(t), "totp\x00u2\x00123", exp)
		must(t, err)
		if !first || again || !other {
			t.Fatalf("first %v, again %v, other key %v; want true, false, true", first, again, other)
		}
		// An expired mark counts as absent.
		old, err := s.MarkUsed(ctx(t), "old", now().Add(-time.Minute))
		must(t, err)
		revived, err := s.MarkUsed(ctx(t), "old", exp)
		must(t, err)
		if !old || !revived {
			t.Fatalf("expired mark: first %v, after expiry %v; want both true", old, revived)
		}
	}},
	{"MarkUsedConcurrentOneWinner", func(t *testing.T, s storage.Store) {
		const n = 30
		exp := now().Add(time.Minute)
		type res struct {
			first bool
			err   error
		}
		out := Together(n, func(int) res {
			f, err := s.MarkUsed(ctx(t), "race", exp)
			return res{f, err}
		})
		for _, r := range out {
			must(t, r.err)
		}
		if w := Count(out, func(r res) bool { return r.first }); w != 1 {
			t.Fatalf("%d winners, want exactly 1", w)
		}
	}},
	{"JanitorRemovesExpiredGuards", func(t *testing.T, s storage.Store) {
		at := now()
		_, _, err := s.AddAttempt(ctx(t), "gone", time.Minute, at.Add(-time.Hour))
		must(t, err)
		_, _, err = s.AddAttempt(ctx(t), "kept", time.Hour, at)
		must(t, err)
		_, err = s.MarkUsed(ctx(t), "gone-mark", at.Add(-time.Minute))
		must(t, err)
		_, err = s.MarkUsed(ctx(t), "kept-mark", at.Add(time.Hour))
		must(t, err)
		n, err := s.DeleteExpired(ctx(t), at, 100)
		must(t, err)
		if n != 2 {
			t.Fatalf("DeleteExpired removed %d rows, want 2", n)
		}
		if c, _, _ := s.AddAttempt(ctx(t), "kept", time.Hour, at); c != 2 {
			t.Fatalf("live counter lost: next attempt %d, want 2", c)
		}
		if first, _ := s.MarkUsed(ctx(t), "kept-mark", at.Add(time.Hour)); first {
			t.Fatal("live mark lost")
		}
	}},
}
