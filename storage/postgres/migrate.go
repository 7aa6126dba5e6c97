package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-auth/bulwark/migrations"
)

// migrationLock is the two-key advisory lock that serialises MigrateUp
// across replicas. The two-int4 form lives in a different key space from
// the single-bigint locks TryLock takes, so the two can never collide.
const (
	migrationLockClass = 0x42554c57 // "BULW"
	migrationLockObj   = 1
)

const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	name       text        PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// MigrationState is one migration file and whether it has been applied.
type MigrationState struct {
	Name      string
	Applied   bool
	AppliedAt time.Time
}

type migrationFile struct {
	name string
	sql  string
}

func migrationFiles() ([]migrationFile, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("postgres: list migrations: %w", err)
	}
	sort.Strings(names)
	out := make([]migrationFile, 0, len(names))
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return nil, fmt.Errorf("postgres: read migration %s: %w", n, err)
		}
		out = append(out, migrationFile{name: strings.TrimSuffix(n, ".sql"), sql: string(b)})
	}
	return out, nil
}

// MigrateUp applies every pending migration in name order, each in its own
// transaction together with its schema_migrations row, and returns the
// names it applied. A session advisory lock held for the whole run makes
// concurrent callers (replicas starting together) wait and then find
// nothing left to do.
func MigrateUp(ctx context.Context, pool *pgxpool.Pool) (applied []string, err error) {
	files, err := migrationFiles()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, classify("postgres: migrate", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, migrationLockClass, migrationLockObj); err != nil {
		return nil, classify("postgres: migrate lock", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, migrationLockClass, migrationLockObj); uerr != nil {
			// A session we cannot unlock must not go back to the pool
			// still holding the lock; closing it releases the lock.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, createVersionTable); err != nil {
		return nil, classify("postgres: migrate version table", err)
	}
	done := map[string]bool{}
	rows, err := conn.Query(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return nil, classify("postgres: migrate read versions", err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, classify("postgres: migrate read versions", err)
		}
		done[n] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify("postgres: migrate read versions", err)
	}
	for _, f := range files {
		if done[f.name] {
			continue
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return applied, classify("postgres: migrate begin", err)
		}
		// No arguments: pgx sends the file with the simple protocol, so
		// it may hold many statements.
		if _, err := tx.Exec(ctx, f.sql); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return applied, classify("postgres: migration "+f.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, f.name); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return applied, classify("postgres: migration "+f.name, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return applied, classify("postgres: migration "+f.name, err)
		}
		applied = append(applied, f.name)
	}
	return applied, nil
}

// MigrationStatus lists every embedded migration with its state, followed
// by applied names this binary does not know (a newer binary migrated the
// database).
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) ([]MigrationState, error) {
	files, err := migrationFiles()
	if err != nil {
		return nil, err
	}
	appliedAt, err := appliedMigrations(ctx, pool)
	if err != nil {
		return nil, err
	}
	out := make([]MigrationState, 0, len(files))
	known := map[string]bool{}
	for _, f := range files {
		known[f.name] = true
		at, ok := appliedAt[f.name]
		out = append(out, MigrationState{Name: f.name, Applied: ok, AppliedAt: at})
	}
	var unknown []string
	for n := range appliedAt {
		if !known[n] {
			unknown = append(unknown, n)
		}
	}
	sort.Strings(unknown)
	for _, n := range unknown {
		out = append(out, MigrationState{Name: n, Applied: true, AppliedAt: appliedAt[n]})
	}
	return out, nil
}

// Pending returns how many embedded migrations are not applied yet; serve
// refuses to start while it is non-zero.
func Pending(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	files, err := migrationFiles()
	if err != nil {
		return 0, err
	}
	appliedAt, err := appliedMigrations(ctx, pool)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range files {
		if _, ok := appliedAt[f.name]; !ok {
			n++
		}
	}
	return n, nil
}

// appliedMigrations reads schema_migrations; a database never migrated has
// no such table and so no applied migrations.
func appliedMigrations(ctx context.Context, pool *pgxpool.Pool) (map[string]time.Time, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, classify("postgres: migration status", err)
	}
	out := map[string]time.Time{}
	if !exists {
		return out, nil
	}
	rows, err := pool.Query(ctx, `SELECT name, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, classify("postgres: migration status", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			n  string
			at time.Time
		)
		if err := rows.Scan(&n, &at); err != nil {
			return nil, classify("postgres: migration status", err)
		}
		out[n] = at
	}
	return out, classify("postgres: migration status", rows.Err())
}
