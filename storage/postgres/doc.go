// Package postgres is Bulwark's production storage backend: storage.Store on
// PostgreSQL through pgx/v5, plus the migration runner that applies the
// embedded files of package migrations.
//
// Every query goes through one querier: the pgx.Tx that BeginTX put in the
// context when there is one (fosite wraps code exchange and refresh rotation
// in transactions), the pool otherwise. Errors are classified by SQLSTATE
// into the storage sentinels, never by message text.
//
// Cross-replica coordination uses Postgres itself: session advisory locks
// for scheduled work and migrations, LISTEN/NOTIFY for cache invalidation.
package postgres
