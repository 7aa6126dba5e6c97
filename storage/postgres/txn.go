package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwark-auth/bulwark/storage"
)

// txn is a transaction BeginTX began, carried in the context. It is the
// querier of every statement run in it.
//
// Token rows created in it (a code exchange's or rotation's access and
// refresh token) are queued, not sent: nothing outside the transaction
// can see them before it commits anyway, so they are written together, in
// one INSERT, right before the transaction's next statement or its COMMIT.
// That saves a round trip per row without changing what any statement of
// the transaction, or anyone else, sees. An error of the queued INSERT is
// reported by the statement or Commit that sent it.
type txn struct {
	tx    pgx.Tx
	store *Store
	// pending are the queued token rows, in creation order.
	pending []pendingToken
}

// pendingToken is one queued token row, with the audit event of the
// request when the row is its access token (storage.TokenAudit).
type pendingToken struct {
	kind  string
	rec   *storage.TokenRecord
	event *storage.AuditEvent
}

var _ querier = (*txn)(nil)

// queue adds a token row to write with the transaction's next statement.
func (t *txn) queue(kind string, rec *storage.TokenRecord, event *storage.AuditEvent) {
	t.pending = append(t.pending, pendingToken{kind: kind, rec: rec, event: event})
}

// flush writes the queued rows in one statement.
func (t *txn) flush(ctx context.Context) error {
	if len(t.pending) == 0 {
		return nil
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
		_, err := t.tx.Exec(ctx, tokenInsertSQL(len(rows), -1), args...)
		return classify("postgres: create token sessions", err)
	}
	audit, err := t.store.auditArgs(event)
	if err != nil {
		return err
	}
	err = t.tx.QueryRow(ctx, tokenInsertSQL(len(rows), eventRow), append(args, audit...)...).Scan(&event.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		// The access token row was written, so its audit row was: a
		// statement that yields none is not ours.
		return fmt.Errorf("postgres: create token sessions: audit row missing: %w", err)
	}
	return classify("postgres: create token sessions", err)
}

// Exec implements querier: queued rows first.
func (t *txn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.tx.Exec(ctx, sql, args...)
}

// Query implements querier: queued rows first.
func (t *txn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.tx.Query(ctx, sql, args...)
}

// QueryRow implements querier: queued rows first.
func (t *txn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.tx.QueryRow(ctx, sql, args...)
}

// errRow is a pgx.Row whose Scan fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

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
