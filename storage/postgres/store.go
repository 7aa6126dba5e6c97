package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/storage"
)

var _ storage.Store = (*Store)(nil)

// Config configures Open.
type Config struct {
	// DSN is a libpq connection string or postgres:// URL.
	DSN string
	// MaxConns caps the pool. Zero means the DSN's pool_max_conns when it
	// sets one, else DefaultMaxConns.
	MaxConns int32
	// Now is the clock used for expiry checks and default timestamps;
	// time.Now when nil.
	Now func() time.Time
	// Logger receives operational warnings (lost LISTEN connections); a
	// discarding logger when nil.
	Logger logrus.FieldLogger
}

// DefaultMaxConns is the pool size when neither Config nor the DSN sets
// one: 4 per CPU, at least 16. pgxpool's own default (max(4, CPUs)) keeps
// a 2-core replica at 4 connections, and every token waits for a commit
// (a WAL flush) while holding one: measured on 2 cores, 4 connections
// carried about half the client-credentials throughput of 16 (see
// docs/performance.md). More connections in flight also let Postgres
// group commits. Mind max_connections: replicas × pool must fit.
func DefaultMaxConns() int32 {
	return int32(max(16, 4*runtime.GOMAXPROCS(0))) // #nosec G115 -- GOMAXPROCS is a small positive int
}

// Store implements storage.Store on a pgx connection pool.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
	log  logrus.FieldLogger
	// writer batches token INSERTs made outside a transaction.
	writer *tokenWriter
}

// Open connects to the database and checks that it answers. It does not
// migrate: run MigrateUp (bulwark migrate) first, and use Pending to refuse
// to serve an unmigrated schema.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, errors.New("postgres: invalid DSN")
	}
	switch {
	case cfg.MaxConns > 0:
		pcfg.MaxConns = cfg.MaxConns
	case !strings.Contains(cfg.DSN, "pool_max_conns"):
		pcfg.MaxConns = DefaultMaxConns()
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, classify("postgres: open", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, classify("postgres: open", err)
	}
	clock := cfg.Now
	if clock == nil {
		clock = time.Now
	}
	// Postgres keeps microseconds: timestamps the store assigns and writes
	// back to the caller's struct must equal what a later read returns.
	s := &Store{pool: pool, now: func() time.Time { return clock().Truncate(time.Microsecond) }, log: cfg.Logger, writer: newTokenWriter(pool)}
	if s.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s.log = l
	}
	return s, nil
}

// Pool returns the underlying pool, for the migrate command and health
// metrics.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping implements storage.Store.
func (s *Store) Ping(ctx context.Context) error {
	return classify("postgres: ping", s.pool.Ping(ctx))
}

// Close implements storage.Store.
func (s *Store) Close() {
	s.writer.close()
	s.pool.Close()
}

// querier is what pgx.Tx and *pgxpool.Pool have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type txKey struct{}

// txFrom returns the transaction BeginTX put in ctx, or nil.
func txFrom(ctx context.Context) *txn {
	t, _ := ctx.Value(txKey{}).(*txn)
	return t
}

// q returns the transaction carried by ctx, or the pool.
func (s *Store) q(ctx context.Context) querier {
	if t := txFrom(ctx); t != nil {
		return t
	}
	return s.pool
}

// hasTx reports whether ctx carries a transaction of this store.
func (s *Store) hasTx(ctx context.Context) bool {
	return txFrom(ctx) != nil
}

// BeginTX implements fosite's storage.Transactional. A transaction already
// in ctx is nested as a savepoint. BEGIN itself rides with the
// transaction's first statement (txn).
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	t, err := s.beginTx(ctx, txFrom(ctx))
	if err != nil {
		return ctx, classify("postgres: begin", err)
	}
	return context.WithValue(ctx, txKey{}, t), nil
}

// Commit implements fosite's storage.Transactional. The token rows the
// transaction queued are written first, in the same round trip; if that
// fails the transaction is rolled back and the error returned.
func (s *Store) Commit(ctx context.Context) error {
	t := txFrom(ctx)
	if t == nil {
		return errors.New("postgres: commit without transaction")
	}
	return classify("postgres: commit", t.commit(ctx))
}

// Rollback implements fosite's storage.Transactional. Rolling back a
// finished transaction (fosite does after a failed commit) does nothing.
func (s *Store) Rollback(ctx context.Context) error {
	t := txFrom(ctx)
	if t == nil {
		return errors.New("postgres: rollback without transaction")
	}
	return classify("postgres: rollback", t.rollback(ctx))
}

// inTx runs fn in the caller's transaction if ctx carries one, otherwise in
// a new transaction of its own, so multi-statement operations are atomic
// either way.
func (s *Store) inTx(ctx context.Context, fn func(q querier) error) error {
	if t := txFrom(ctx); t != nil {
		return fn(t)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return classify("postgres: begin", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return classify("postgres: commit", tx.Commit(ctx))
}

// maxTxAttempts bounds retryTx.
const maxTxAttempts = 4

// retryTx is inTx for containment and rotation: when it owns the
// transaction (ctx carries none) it runs fn again, up to maxTxAttempts
// times, after a serialization failure or deadlock (40001/40P01), which
// roll the whole transaction back. Inside a caller's transaction it cannot
// retry: the caller's transaction is what must be repeated, so the error is
// returned as fosite.ErrSerializationFailure for the caller to act on.
func (s *Store) retryTx(ctx context.Context, fn func(q querier) error) error {
	if t := txFrom(ctx); t != nil {
		return fn(t)
	}
	var err error
	for range maxTxAttempts {
		if err = s.inTx(ctx, fn); !isRetryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// isRetryable reports a Postgres serialization failure or deadlock, as
// opposed to fosite.ErrSerializationFailure used as "a concurrent request
// won" (RotateRefreshToken), which must not be retried.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected)
}

// SQLSTATE codes the store reacts to.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeTooManyConnections   = "53300"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
	// Bytes the database refuses as text: a NUL (22021
	// character_not_in_repertoire) or invalid UTF-8 (22P05
	// untranslatable_character). Input validation should refuse them at
	// the door; this is the last line of defence.
	codeCharacterNotInRepertoire = "22021"
	codeUntranslatableCharacter  = "22P05"
)

// classify maps a pgx error onto the storage sentinels, keeping the original
// error in the chain for the log. op names the operation; it never contains
// a value.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, storage.ErrNotFound)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == codeUniqueViolation:
			return fmt.Errorf("%s: %w", op, storage.ErrConflict)
		case pgErr.Code == codeCharacterNotInRepertoire, pgErr.Code == codeUntranslatableCharacter:
			return fmt.Errorf("%s: %w: %w", op, storage.ErrInvalidInput, err)
		case pgErr.Code == codeSerializationFailure, pgErr.Code == codeDeadlockDetected:
			return fmt.Errorf("%s: %w: %w", op, fosite.ErrSerializationFailure, err)
		case pgErr.Code == codeTooManyConnections, pgErr.Code == codeAdminShutdown,
			pgErr.Code == codeCrashShutdown, pgErr.Code == codeCannotConnectNow,
			len(pgErr.Code) == 5 && pgErr.Code[:2] == "08": // connection exception class
			return fmt.Errorf("%s: %w: %w", op, storage.ErrUnavailable, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	if isConnectionFailure(err) {
		return fmt.Errorf("%s: %w: %w", op, storage.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isConnectionFailure reports errors that mean the database could not be
// reached or the connection broke, as opposed to a rejected statement.
func isConnectionFailure(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	// Acquiring a connection from the pool is the connect step: a deadline
	// hit there means the database did not answer in time.
	return errors.Is(err, context.DeadlineExceeded)
}

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// fromNull maps NULL back to the zero time.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// limitArg maps a non-positive limit to NULL, which Postgres reads as "no
// limit".
func limitArg(n int) *int {
	if n <= 0 {
		return nil
	}
	return &n
}

// nonNil keeps text[] columns NOT NULL.
func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// nilIfEmpty returns nil for an empty slice.
func nilIfEmpty(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	return v
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
