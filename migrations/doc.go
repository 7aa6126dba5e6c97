// Package migrations owns Bulwark's Postgres schema: numbered SQL files
// (0001_init.sql, 0002_...) embedded into the binary and applied in name
// order by storage/postgres.MigrateUp, each in its own transaction.
//
// Files are never edited once released; a schema change is a new file. The
// runner records every applied file in schema_migrations, so the set of
// applied names (not a single counter) is the version.
package migrations
