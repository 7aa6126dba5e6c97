package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Store { return memory.New(memory.Config{}) })
}

// TestTransactionIsolation: a caller outside the transaction waits until it
// ends and then sees only committed state.
func TestTransactionIsolation(t *testing.T) {
	s := memory.New(memory.Config{})
	tx, err := s.BeginTX(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(tx, &storage.Client{ID: "app"}); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		_, err := s.ClientByID(context.Background(), "app")
		result <- err
	}()
	select {
	case err := <-result:
		t.Fatalf("outside reader did not wait for the transaction: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := s.Rollback(tx); err != nil {
		t.Fatal(err)
	}
	if err := <-result; !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("outside reader after rollback: want ErrNotFound, got %v", err)
	}
}

func TestTransactionMisuse(t *testing.T) {
	s := memory.New(memory.Config{})
	tx, err := s.BeginTX(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginTX(tx); err == nil {
		t.Fatal("nested BeginTX succeeded")
	}
	if err := s.Commit(tx); err != nil {
		t.Fatal(err)
	}
	// fosite calls Rollback after a failed Commit; a finished transaction
	// must report an error, not unlock twice.
	if err := s.Rollback(tx); err == nil {
		t.Fatal("Rollback after Commit succeeded")
	}
	if err := s.Commit(tx); err == nil {
		t.Fatal("second Commit succeeded")
	}
	// The store is usable again, even with the stale context.
	if err := s.CreateClient(tx, &storage.Client{ID: "app"}); err != nil {
		t.Fatal(err)
	}
}

func TestNotifyInTransaction(t *testing.T) {
	cases := []struct {
		name    string
		finish  func(s *memory.Store, ctx context.Context) error
		deliver bool
	}{
		{"case=commit-delivers", (*memory.Store).Commit, true},
		{"case=rollback-drops", (*memory.Store).Rollback, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := memory.New(memory.Config{})
			ch, err := s.Subscribe(t.Context(), "keys")
			if err != nil {
				t.Fatal(err)
			}
			tx, err := s.BeginTX(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Notify(tx, "keys", "in-tx"); err != nil {
				t.Fatal(err)
			}
			if len(ch) != 0 {
				t.Fatal("payload delivered before the transaction ended")
			}
			if err := tc.finish(s, tx); err != nil {
				t.Fatal(err)
			}
			// Delivery is synchronous, so a marker sent afterwards arrives
			// after anything the transaction released.
			if err := s.Notify(t.Context(), "keys", "marker"); err != nil {
				t.Fatal(err)
			}
			first := <-ch
			if got := first == "in-tx"; got != tc.deliver {
				t.Fatalf("first payload %q, want delivery of in-tx = %v", first, tc.deliver)
			}
		})
	}
}

func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	s := memory.New(memory.Config{})
	ch, err := s.Subscribe(t.Context(), "c")
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 { // nobody reads: payloads beyond the buffer are dropped
		if err := s.Notify(t.Context(), "c", "x"); err != nil {
			t.Fatal(err)
		}
	}
	if len(ch) == 0 || len(ch) == 1000 {
		t.Fatalf("buffered %d payloads, want a bounded, non-empty buffer", len(ch))
	}
}

// TestClock: expiry decisions use Config.Now, not the wall clock.
func TestClock(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := t0
	s := memory.New(memory.Config{Now: func() time.Time { return clock }})
	ctx := t.Context()
	if err := s.CreateLoginSession(ctx, &storage.LoginSession{Key: "k", Subject: "alice", ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetClientAssertionJWT(ctx, "jti", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetLoginSession(ctx, "k"); err != nil {
		t.Fatalf("session before expiry: %v", err)
	}
	clock = t0.Add(2 * time.Hour)
	if _, err := s.GetLoginSession(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("session after expiry: want ErrNotFound, got %v", err)
	}
	if err := s.ClientAssertionJWTValid(ctx, "jti"); err != nil {
		t.Fatalf("expired jti: %v", err)
	}
	e := &storage.AuditEvent{Event: "login"}
	if err := s.AppendAudit(ctx, e); err != nil {
		t.Fatal(err)
	}
	if !e.Time.Equal(clock) {
		t.Fatalf("audit time: want the store clock %s, got %s", clock, e.Time)
	}
}

func TestClose(t *testing.T) {
	s := memory.New(memory.Config{})
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Ping(t.Context()); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Ping after Close: want ErrUnavailable, got %v", err)
	}
}
