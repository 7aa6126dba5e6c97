package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/ory/fosite"
)

// retryStore opens a store on the test server's maintenance database:
// retryTx needs a real transaction, not the schema. (pgtest imports this
// package, so the internal test cannot use it.)
func retryStore(t *testing.T) *Store {
	t.Helper()
	dsn := os.Getenv("BULWARK_TEST_PG")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	s, err := Open(t.Context(), Config{DSN: dsn, MaxConns: 2})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Postgres unreachable and CI=true: %v", err)
		}
		t.Skipf("Postgres unreachable: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// raise makes Postgres itself fail the statement with SQLSTATE code.
func raise(ctx context.Context, q querier, code string) error {
	_, err := q.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = '%s'; END $$`, code))
	return classify("forced", err)
}

func TestRetryTx(t *testing.T) {
	s := retryStore(t)
	cases := []struct {
		name     string
		failures int    // attempts that fail before one succeeds
		code     string // SQLSTATE of the failures
		sentinel bool   // fail with fosite.ErrSerializationFailure as "a concurrent request won"
		attempts int
		wantErr  error
	}{
		{name: "case=deadlock once, then success", failures: 1, code: codeDeadlockDetected, attempts: 2},
		{name: "case=serialization failure twice, then success", failures: 2, code: codeSerializationFailure, attempts: 3},
		{name: "case=deadlock every time: bounded", failures: 100, code: codeDeadlockDetected, attempts: maxTxAttempts, wantErr: fosite.ErrSerializationFailure},
		{name: "case=other error: no retry", failures: 100, code: "P0001", attempts: 1},
		{name: "case=lost race sentinel: no retry", failures: 100, sentinel: true, attempts: 1, wantErr: fosite.ErrSerializationFailure},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			attempts := 0
			err := s.retryTx(ctx, func(q querier) error {
				attempts++
				if attempts > c.failures {
					return nil
				}
				if c.sentinel {
					return fmt.Errorf("already rotated: %w", fosite.ErrSerializationFailure)
				}
				return raise(ctx, q, c.code)
			})
			if attempts != c.attempts {
				t.Fatalf("attempts = %d, want %d (err %v)", attempts, c.attempts, err)
			}
			switch {
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			case c.wantErr == nil && c.failures < 100 && err != nil:
				t.Fatalf("err = %v", err)
			case c.failures >= 100 && err == nil:
				t.Fatal("a failing transaction reported success")
			}
		})
	}
	// Inside a caller's transaction retryTx cannot repeat anything.
	tctx, err := s.BeginTX(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Rollback(tctx) }()
	attempts := 0
	err = s.retryTx(tctx, func(q querier) error { attempts++; return raise(tctx, q, codeDeadlockDetected) })
	if attempts != 1 || !errors.Is(err, fosite.ErrSerializationFailure) {
		t.Fatalf("in a caller's transaction: %d attempts, %v", attempts, err)
	}
}
