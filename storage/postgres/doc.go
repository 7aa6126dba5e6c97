// Package postgres is Bulwark's production storage backend: storage.Store on
// PostgreSQL through pgx/v5, plus the migration runner that applies the
// embedded files of package migrations.
//
// Every query goes through one querier: the pgx.Tx that BeginTX put in the
// context when there is one (fosite wraps code exchange and refresh rotation
// in transactions), the pool otherwise. Errors are classified by SQLSTATE
// into the storage sentinels, never by message text: 22021/22P05 (a NUL or
// invalid UTF-8 in text) become storage.ErrInvalidInput, a client error.
//
// Cross-replica coordination uses Postgres itself: session advisory locks
// for scheduled work and migrations, LISTEN/NOTIFY for cache invalidation.
//
// # Single use
//
// Every one-time artifact is consumed by one statement whose result decides
// the winner: a code by UPDATE … SET active = false WHERE … AND active (zero
// rows: fosite.ErrInvalidatedAuthorizeCode), its PKCE row deleted in the
// same statement (fosite's own DeletePKCERequestSession is a no-op, since
// fosite calls it before comparing the verifier) and, when ReadGrant was
// given the raw code, its OIDC session too (flows.go), a refresh token by
// the same UPDATE in RotateRefreshToken (zero rows:
// fosite.ErrSerializationFailure; the family's access tokens deleted in the
// same statement), OIDC sessions otherwise and pushed authorization
// requests by DELETE … RETURNING, a client assertion jti by INSERT … ON
// CONFLICT.
//
// # Round trips
//
// A transaction begun with BeginTX (txn.go) sends BEGIN in one pipeline
// with its first statement, and queues the token rows it creates to send
// them, as one INSERT, in the pipeline of its next statement or of its
// COMMIT. The grant's lock statement and the consuming statement go in one
// pipeline too: the server runs the second only after the first took its
// locks, with its own snapshot, as if it had been sent after the answer.
// A code exchange or a refresh is thus three round trips (ReadGrant; the
// locks and the consumption; the tokens and COMMIT) and one pool
// connection for the transaction; the authorization endpoint's two
// (ResumeLogin; CreateAuthorizeSessions) are single statements.
//
// Back-channel logouts (backchannel.go): an RP session becomes an outbox
// row by one DELETE … RETURNING + INSERT statement run in the transaction
// that ends the session; workers claim due rows by one UPDATE over a
// FOR UPDATE SKIP LOCKED subquery that sets a lease, and finish or release
// them only while they still hold it.
//
// # Lock order
//
// Tokens of one grant are minted and revoked under transaction-scoped
// advisory locks (two-key form; classes lockClassFamily, lockClassSubject,
// lockClassClient, second key hashtext of the value). Every transaction
// that touches several token kinds takes its locks in this order, and takes
// no row lock before its advisory locks:
//
//  1. the grant family (request id), exclusive — code exchange
//     (InvalidateAuthorizeCodeSession), rotation (RotateRefreshToken), reuse
//     handling (DeleteRefreshTokenSession), family revocation
//     (RevokeRefreshToken, RevokeAccessToken);
//  2. the subject, then the client: shared by a mint (lockGrant, right after
//     its family; LockMint, as the first statement of a device grant's
//     mint, which has no family to lock), exclusive by containment
//     (revokeTokensWhere: subject before client when it takes both) and by
//     DeleteClient (after deleting the client row, before its tokens);
//  3. rows of token_sessions: code, then refresh, then access.
//
// So a revocation that runs while a mint of its family (or of its subject
// or client) is uncommitted waits for it, and its statements, each with a
// fresh READ COMMITTED snapshot taken after the lock, see what the mint
// committed; a mint that comes second finds its code or refresh token
// inactive and loses. The device grant's mint, whose approval was consumed
// by its poll before any lock, comes second by finding, in the statement
// after LockMint's locks, its user or client disabled or gone
// (storage.ErrOwnerDisabled); that check locks no row, since the disable
// holds the user or client row while it waits for the lock. Rotation and containment no longer lock rows in
// opposite orders, which deadlocked (40P01) before.
//
// A mint outside any transaction (client credentials, token exchange, a
// code at the authorization endpoint) takes no advisory lock: its single
// INSERT … SELECT … FROM clients WHERE NOT disabled FOR SHARE is the
// serialisation point against a disable, which updates the client row
// before it revokes. CreateAuthorizeSessions writes a code's three rows
// and the relying-party session in one such statement, selecting the
// login session FOR KEY SHARE, so a logout deleting it waits or wins.
// Mints inside a transaction must not lock the client row: the disable
// holds that row while it waits for the client lock.
//
// Containment and rotation that own their transaction retry it up to
// maxTxAttempts times on 40001/40P01 (retryTx). Inside a caller's
// transaction (the admin service's, fosite's) the error is returned as
// fosite.ErrSerializationFailure: only the caller can repeat its
// transaction.
package postgres
