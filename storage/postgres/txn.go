package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulwark-auth/bulwark/storage"
)

// txn is a transaction BeginTX began, carried in the context. It is the
// querier of every statement run in it, and it saves round trips without
// changing what any statement sees:
//
//   - BEGIN is not sent on its own: it goes in one pipeline (pgx.Batch)
//     with the transaction's first statement. A transaction that never
//     runs a statement sends nothing.
//   - Token rows created in it (a code exchange's or rotation's access and
//     refresh token) are queued, not sent: nothing outside the
//     transaction can see them before it commits anyway, so they are
//     written together, in one INSERT, in the pipeline of the
//     transaction's next statement or of its COMMIT. An error of the
//     queued INSERT is reported by that statement or by Commit, and
//     nothing after it in the pipeline runs (the transaction is aborted).
//
// A code exchange is thus: the grant's locks (with BEGIN), the code's
// consumption, the tokens with COMMIT — three round trips.
//
// A nested BeginTX is a savepoint on the same connection.
type txn struct {
	store *Store
	// conn is the outermost transaction's connection (shared by its
	// savepoints), held from BeginTX until Commit or Rollback.
	conn *pgxpool.Conn
	// root is the outermost transaction (itself when outermost).
	root *txn
	// parent is the enclosing transaction of a savepoint; savepoint is
	// its name.
	parent    *txn
	savepoint string
	// begun is set (on the root) once BEGIN was sent.
	begun bool
	done  bool
	// pending are the queued token rows, in creation order.
	pending []pendingToken
	// committed run once the outermost transaction committed.
	committed []func()
	// savepoints counts the savepoints taken (on the root), for names.
	savepoints int
}

// pendingToken is one queued token row, with the audit event of the
// request when the row is its access token (storage.TokenAudit).
type pendingToken struct {
	kind  string
	rec   *storage.TokenRecord
	event *storage.AuditEvent
}

var _ querier = (*txn)(nil)

// errTxDone is the error of a statement in a finished transaction.
var errTxDone = pgx.ErrTxClosed

// beginTx starts a transaction on a pool connection, or a savepoint in
// outer. The outermost transaction sends no BEGIN yet.
func (s *Store) beginTx(ctx context.Context, outer *txn) (*txn, error) {
	if outer == nil {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		t := &txn{store: s, conn: conn}
		t.root = t
		return t, nil
	}
	if outer.done {
		return nil, errTxDone
	}
	outer.root.savepoints++
	name := fmt.Sprintf("bulwark_sp_%d", outer.root.savepoints)
	// SAVEPOINT is a statement of the outer transaction: what it queued,
	// and its BEGIN, go first.
	if _, err := outer.Exec(ctx, "SAVEPOINT "+name); err != nil {
		return nil, err
	}
	return &txn{store: s, conn: outer.conn, root: outer.root, parent: outer, savepoint: name}, nil
}

// onCommit runs fn once what this transaction wrote is committed: at the
// outermost transaction's commit. A rollback drops it.
func (t *txn) onCommit(fn func()) { t.committed = append(t.committed, fn) }

// queue adds a token row to write with the transaction's next statement.
func (t *txn) queue(kind string, rec *storage.TokenRecord, event *storage.AuditEvent) {
	t.pending = append(t.pending, pendingToken{kind: kind, rec: rec, event: event})
}

// prelude queues on b what must precede the transaction's next statement:
// BEGIN when not sent yet, then the queued token rows (one INSERT). It
// reports whether it queued anything. The caller must send b; BEGIN
// counts as sent, the rows as written, from here on (an error of either
// fails the batch, and the transaction with it).
func (t *txn) prelude(b *pgx.Batch) (bool, error) {
	queued := false
	if !t.root.begun {
		b.Queue("BEGIN")
		t.root.begun, queued = true, true
	}
	if len(t.pending) == 0 {
		return queued, nil
	}
	rows := t.pending
	t.pending = nil
	args := make([]any, 0, len(rows)*tokenInsertParams+10)
	var event *storage.AuditEvent
	eventRow := 0
	for i, r := range rows {
		args = append(args, r.kind, r.rec.Key, r.rec.RequestID, r.rec.ClientID, r.rec.Subject, r.rec.Active,
			r.rec.RequestedAt, r.rec.ExpiresAt, r.rec.Data)
		if r.event != nil && event == nil {
			event, eventRow = r.event, i
		}
	}
	if event == nil {
		b.Queue(tokenInsertSQL(len(rows), -1), args...).Exec(func(pgconn.CommandTag) error { return nil })
		return true, nil
	}
	audit, err := t.store.auditArgs(event)
	if err != nil {
		return false, err
	}
	b.Queue(tokenInsertSQL(len(rows), eventRow), append(args, audit...)...).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&event.ID); err != nil {
			// No row: the access token row was written, so its audit
			// row was; a statement that yields none is not ours.
			return fmt.Errorf("postgres: create token sessions: audit row: %w", err)
		}
		return nil
	})
	return true, nil
}

// send sends b (the prelude and one statement) in one round trip.
func (t *txn) send(ctx context.Context, b *pgx.Batch) error {
	return t.conn.SendBatch(ctx, b).Close()
}

// flush sends the prelude alone, if there is one.
func (t *txn) flush(ctx context.Context) error {
	b := &pgx.Batch{}
	if queued, err := t.prelude(b); err != nil || !queued {
		return err
	}
	return classify("postgres: create token sessions", t.send(ctx, b))
}

// Exec implements querier: the prelude and the statement in one round
// trip.
func (t *txn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.done {
		return pgconn.CommandTag{}, errTxDone
	}
	b := &pgx.Batch{}
	queued, err := t.prelude(b)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	if !queued {
		return t.conn.Exec(ctx, sql, args...)
	}
	var tag pgconn.CommandTag
	b.Queue(sql, args...).Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
	return tag, t.send(ctx, b)
}

// sendBatch sends b's statements on q in one round trip (after a
// transaction's prelude) and reads every result.
func sendBatch(ctx context.Context, q querier, b *pgx.Batch) error {
	switch q := q.(type) {
	case *txn:
		if q.done {
			return errTxDone
		}
		all := &pgx.Batch{}
		if _, err := q.prelude(all); err != nil {
			return err
		}
		all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
		return q.send(ctx, all)
	case interface {
		SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
	}:
		return q.SendBatch(ctx, b).Close()
	}
	return fmt.Errorf("postgres: %T cannot send a batch", q)
}

// Query implements querier: the prelude, if any, first (rows cannot ride
// a batch's callback).
func (t *txn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.done {
		return nil, errTxDone
	}
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.conn.Query(ctx, sql, args...)
}

// QueryRow implements querier: the prelude and the statement go in one
// round trip when the row is scanned.
func (t *txn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return txRow{t: t, ctx: ctx, sql: sql, args: args}
}

// txRow is QueryRow's row: Scan sends the statement.
type txRow struct {
	t    *txn
	ctx  context.Context
	sql  string
	args []any
}

func (r txRow) Scan(dest ...any) error {
	if r.t.done {
		return errTxDone
	}
	b := &pgx.Batch{}
	queued, err := r.t.prelude(b)
	if err != nil {
		return err
	}
	if !queued {
		return r.t.conn.QueryRow(r.ctx, r.sql, r.args...).Scan(dest...)
	}
	b.Queue(r.sql, r.args...).QueryRow(func(row pgx.Row) error { return row.Scan(dest...) })
	return r.t.send(r.ctx, b)
}

// commit ends the transaction: the prelude and COMMIT (or, for a
// savepoint, RELEASE) in one round trip; nothing when no statement ever
// ran. The outermost transaction returns its connection to the pool.
func (t *txn) commit(ctx context.Context) error {
	if t.done {
		return errTxDone
	}
	end := "COMMIT"
	if t.parent != nil {
		end = "RELEASE SAVEPOINT " + t.savepoint
	}
	b := &pgx.Batch{}
	queued, err := t.prelude(b)
	if err == nil && (queued || t.root.begun) {
		var tag pgconn.CommandTag
		b.Queue(end).Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
		if err = t.send(ctx, b); err == nil && tag.String() == "ROLLBACK" {
			// COMMIT of a transaction an earlier error aborted.
			err = pgx.ErrTxCommitRollback
		}
	}
	if err != nil {
		// The transaction is aborted or the connection broken: end it.
		_ = t.rollback(ctx)
		return err
	}
	t.done = true
	hooks := t.committed
	t.committed = nil
	if t.parent != nil {
		// A savepoint's writes commit with its parent.
		t.parent.committed = append(t.parent.committed, hooks...)
		return nil
	}
	t.conn.Release()
	for _, fn := range hooks {
		fn()
	}
	return nil
}

// rollback ends the transaction without its writes. The outermost
// transaction returns its connection to the pool, which closes it if the
// ROLLBACK did not reach the server.
func (t *txn) rollback(ctx context.Context) error {
	if t.done {
		return nil
	}
	t.done = true
	t.pending, t.committed = nil, nil
	// fosite may roll back after a failed commit or with a finished
	// request's context: the rollback must not run on a dead context.
	ctx = context.WithoutCancel(ctx)
	var err error
	if t.parent != nil {
		_, err = t.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT "+t.savepoint)
		return err
	}
	if t.begun {
		_, err = t.conn.Exec(ctx, "ROLLBACK")
	}
	t.conn.Release()
	return err
}

// tokenInsertParams is the number of parameters of one token row.
const tokenInsertParams = 9

// tokenInsertSQL returns the INSERT of n token rows; when eventRow is a
// row index, a data-modifying CTE that also writes the audit row (its
// parameters follow the rows') once for that row. The statements are
// built once per shape (pgx prepares and caches them by text).
func tokenInsertSQL(n, eventRow int) string {
	k := [2]int{n, eventRow}
	if v, ok := tokenInsertCache.Load(k); ok {
		return v.(string)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO token_sessions (kind, key, request_id, client_id, subject, active, requested_at, expires_at, data) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		p := i * tokenInsertParams
		fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", p+1, p+2, p+3, p+4, p+5, p+6, p+7, p+8, p+9)
	}
	sql := b.String()
	if eventRow >= 0 {
		// Only the event's own row yields the audit row.
		sql = fmt.Sprintf(`WITH t AS (%s RETURNING kind, key)
			INSERT INTO audit_events %s SELECT %s FROM t WHERE t.kind = $%d AND t.key = $%d RETURNING id`,
			sql, auditColumns, auditParams(n*tokenInsertParams+1), eventRow*tokenInsertParams+1, eventRow*tokenInsertParams+2)
	}
	tokenInsertCache.Store(k, sql)
	return sql
}

var tokenInsertCache sync.Map
