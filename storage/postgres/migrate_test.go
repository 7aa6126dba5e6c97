package postgres_test

import (
	"errors"
	"io/fs"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-auth/bulwark/migrations"
	"github.com/bulwark-auth/bulwark/storage/postgres"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

func embeddedCount(t *testing.T) int {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no embedded migrations: %v", err)
	}
	return len(names)
}

func newPool(t *testing.T, dsn string) *pgxpool.Pool {
	pool, err := pgxpool.New(ctxT(t), dsn)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestMigrateUpStatusIdempotent(t *testing.T) {
	ctx := ctxT(t)
	pool := newPool(t, pgtest.NewDatabase(t))
	want := embeddedCount(t)

	n, err := postgres.Pending(ctx, pool)
	if err != nil || n != want {
		t.Fatalf("Pending on empty database = %d, %v; want %d", n, err, want)
	}
	st, err := postgres.MigrationStatus(ctx, pool)
	if err != nil || len(st) != want {
		t.Fatalf("status = %v, %v", st, err)
	}
	for _, m := range st {
		if m.Applied || !m.AppliedAt.IsZero() {
			t.Fatalf("%s reported applied on an empty database", m.Name)
		}
	}

	applied, err := postgres.MigrateUp(ctx, pool)
	if err != nil || len(applied) != want || applied[0] != "0001_init" {
		t.Fatalf("first MigrateUp = %v, %v", applied, err)
	}
	again, err := postgres.MigrateUp(ctx, pool)
	if err != nil || len(again) != 0 {
		t.Fatalf("second MigrateUp = %v, %v; want nothing applied", again, err)
	}
	if n, err := postgres.Pending(ctx, pool); err != nil || n != 0 {
		t.Fatalf("Pending after migrate = %d, %v", n, err)
	}
	st, err = postgres.MigrationStatus(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st {
		if !m.Applied || m.AppliedAt.IsZero() {
			t.Fatalf("%s not applied after MigrateUp: %+v", m.Name, m)
		}
	}
	// An applied migration unknown to this binary (a newer one migrated
	// the database) shows up in the status.
	if _, err := pool.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ('9999_future')`); err != nil {
		t.Fatal(err)
	}
	st, err = postgres.MigrationStatus(ctx, pool)
	if err != nil || len(st) != want+1 || st[want].Name != "9999_future" || !st[want].Applied {
		t.Fatalf("status with future migration = %+v, %v", st, err)
	}
}

// Two replicas starting together: the advisory lock makes one apply every
// file and the other apply none, with no error on either side.
func TestMigrateUpConcurrent(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	pools := []*pgxpool.Pool{newPool(t, dsn), newPool(t, dsn)}
	var (
		wg      sync.WaitGroup
		results = make([][]string, 2)
		errs    = make([]error, 2)
	)
	for i := range pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = postgres.MigrateUp(ctxT(t), pools[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent MigrateUp: %v", err)
	}
	if got, want := len(results[0])+len(results[1]), embeddedCount(t); got != want {
		t.Fatalf("applied %d migrations in total (%v), want %d exactly once", got, results, want)
	}
	var rows int
	if err := pools[0].QueryRow(ctxT(t), `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != embeddedCount(t) {
		t.Fatalf("schema_migrations rows = %d, %v", rows, err)
	}
}

func TestPendingDetectsPartialSchema(t *testing.T) {
	ctx := ctxT(t)
	pool := newPool(t, pgtest.NewDatabase(t))
	if _, err := postgres.MigrateUp(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM schema_migrations WHERE name = '0001_init'`); err != nil {
		t.Fatal(err)
	}
	if n, err := postgres.Pending(ctx, pool); err != nil || n != 1 {
		t.Fatalf("Pending = %d, %v; want 1", n, err)
	}
}
