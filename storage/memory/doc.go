// Package memory is the in-process implementation of the storage contract:
// the --dev default and the backend for fast tests. It keeps every record in
// maps guarded by locks, stores keys as storage.HashKey and token sessions
// through storage.EncodeRequest/DecodeRequest (the same code path as
// Postgres), and copies records in and out so callers never alias its state.
//
// Transactions: BeginTX takes one store-wide lock exclusively and returns a
// context carrying the transaction; every write made with that context is
// journaled, and Rollback replays the journal backwards. Calls made with any
// other context wait until the transaction ends, so transactions are fully
// serialised (stronger than Postgres' read committed). The price: the
// goroutine that opened a transaction must use the transaction's context for
// every call on this store until Commit or Rollback, or it deadlocks.
//
// Nothing survives a restart; Locker and Notifier work within one process.
package memory
