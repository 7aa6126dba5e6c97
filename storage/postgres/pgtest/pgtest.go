// Package pgtest gives tests a throwaway Postgres database: one freshly
// created database per test, dropped when the test ends. It is imported by
// _test.go files only.
//
// The server is BULWARK_TEST_PG (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). When it
// cannot be reached the test is skipped, unless CI=true, where a skipped
// Postgres test would hide a broken pipeline and so fails instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-auth/bulwark/storage/postgres"
)

// DefaultDSN is the maintenance database used to create test databases.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func adminDSN() string {
	if v := os.Getenv("BULWARK_TEST_PG"); v != "" {
		return v
	}
	return DefaultDSN
}

// unreachable skips or, under CI=true, fails the test.
func unreachable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("pgtest: Postgres unreachable at the BULWARK_TEST_PG server and CI=true: %v", err)
	}
	t.Skipf("pgtest: Postgres unreachable (set BULWARK_TEST_PG to a reachable server; CI=true turns this skip into a failure): %v", err)
}

// NewDatabase creates an empty database with a random name and returns its
// DSN; the database is dropped (WITH (FORCE)) when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := adminDSN()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		unreachable(t, err)
	}
	defer conn.Close(context.Background())

	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("pgtest: random name: %v", err)
	}
	name := "bulwark_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return withDatabase(t, admin, name)
}

// withDatabase returns dsn pointing at database name.
func withDatabase(t testing.TB, dsn, name string) string {
	t.Helper()
	if _, err := pgx.ParseConfig(dsn); err != nil {
		// The DSN may carry a password: do not print it.
		t.Fatalf("pgtest: BULWARK_TEST_PG is not a valid DSN")
	}
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	// Keyword/value form: a later dbname overrides the earlier one.
	return dsn + " dbname=" + name
}

// NewStore creates a database, migrates it and opens a Store on it, closed
// when the test ends.
func NewStore(t testing.TB) *postgres.Store {
	t.Helper()
	return OpenStore(t, NewDatabase(t), nil)
}

// OpenStore migrates the database at dsn (a no-op when already migrated)
// and opens a Store on it with the given clock (time.Now when nil). Two
// stores opened on one DSN behave like two replicas.
func OpenStore(t testing.TB, dsn string, now func() time.Time) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, postgres.Config{DSN: dsn, MaxConns: 8, Now: now})
	if err != nil {
		t.Fatalf("pgtest: open store: %v", err)
	}
	t.Cleanup(s.Close)
	if _, err := postgres.MigrateUp(ctx, s.Pool()); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return s
}
