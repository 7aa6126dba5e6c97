package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// AppendAudit implements storage.AuditStore. e.ID is set from the sequence
// and a zero e.Time to now.
func (s *Store) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	args, err := s.auditArgs(e)
	if err != nil {
		return err
	}
	err = s.q(ctx).QueryRow(ctx, `INSERT INTO audit_events `+auditColumns+` VALUES (`+auditParamsFrom1+`) RETURNING id`, args...).
		Scan(&e.ID)
	return classify("postgres: append audit", err)
}

// auditColumns are the columns an audit row is written with, in the order
// of auditArgs.
const auditColumns = `(time, event, actor, source_ip, user_agent, client_id, subject, outcome, request_id, details)`

// auditParams returns the typed parameter list for auditArgs numbered from
// $first. The casts let it stand in an INSERT … SELECT too (createToken),
// where Postgres cannot infer parameter types from the target columns.
func auditParams(first int) string {
	types := []string{"timestamptz", "text", "text", "text", "text", "text", "text", "text", "text", "jsonb"}
	vals := make([]string, len(types))
	for i, t := range types {
		vals[i] = fmt.Sprintf("$%d::%s", first+i, t)
	}
	return strings.Join(vals, ", ")
}

// auditParamsFrom1 is AppendAudit's parameter list.
var auditParamsFrom1 = auditParams(1)

// auditArgs returns the values of auditColumns for e, filling a zero
// e.Time with now. The audit sink shaped and sanitized e; this only
// encodes it.
func (s *Store) auditArgs(e *storage.AuditEvent) ([]any, error) {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	var details []byte
	if len(e.Details) > 0 {
		var err error
		if details, err = json.Marshal(e.Details); err != nil {
			return nil, fmt.Errorf("postgres: encode audit details: %w", err)
		}
	}
	return []any{e.Time, e.Event, e.Actor, e.SourceIP, e.UserAgent, e.ClientID, e.Subject, e.Outcome, e.RequestID, details}, nil
}

// ListAudit implements storage.AuditStore, newest first. Only the filters
// that are set become conditions, so each query can use its index.
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]*storage.AuditEvent, error) {
	var (
		conds []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if !f.Since.IsZero() {
		add("time >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("time < $%d", f.Until)
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if f.Event != "" {
		add("event = $%d", f.Event)
	}
	if f.ClientID != "" {
		add("client_id = $%d", f.ClientID)
	}
	if f.BeforeID > 0 {
		add("id < $%d", f.BeforeID)
	}
	sql := `SELECT id, time, event, actor, source_ip, user_agent, client_id, subject, outcome, request_id, details
		FROM audit_events`
	if len(conds) > 0 {
		sql += " WHERE " + strings.Join(conds, " AND ")
	}
	args = append(args, limitArg(f.Limit))
	sql += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := s.q(ctx).Query(ctx, sql, args...)
	if err != nil {
		return nil, classify("postgres: list audit", err)
	}
	defer rows.Close()
	var out []*storage.AuditEvent
	for rows.Next() {
		var (
			e       storage.AuditEvent
			details []byte
		)
		if err := rows.Scan(&e.ID, &e.Time, &e.Event, &e.Actor, &e.SourceIP, &e.UserAgent, &e.ClientID,
			&e.Subject, &e.Outcome, &e.RequestID, &details); err != nil {
			return nil, classify("postgres: list audit", err)
		}
		if len(details) > 0 {
			if err := json.Unmarshal(details, &e.Details); err != nil {
				return nil, fmt.Errorf("postgres: decode audit details: %w", err)
			}
		}
		out = append(out, &e)
	}
	return out, classify("postgres: list audit", rows.Err())
}

// PutBlock implements storage.BlockStore; a block on the same (kind, value)
// is replaced.
func (s *Store) PutBlock(ctx context.Context, b *storage.Block) error {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = s.now()
	}
	_, err := s.q(ctx).Exec(ctx, `INSERT INTO blocks (kind, value, reason, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (kind, value) DO UPDATE
		SET reason = EXCLUDED.reason, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at`,
		b.Kind, b.Value, b.Reason, b.CreatedAt, b.ExpiresAt)
	return classify("postgres: put block", err)
}

// ListBlocks implements storage.BlockStore: blocks still in force at now.
func (s *Store) ListBlocks(ctx context.Context, now time.Time) ([]*storage.Block, error) {
	rows, err := s.q(ctx).Query(ctx, `SELECT kind, value, reason, created_at, expires_at FROM blocks
		WHERE expires_at > $1 ORDER BY kind, value`, now)
	if err != nil {
		return nil, classify("postgres: list blocks", err)
	}
	defer rows.Close()
	var out []*storage.Block
	for rows.Next() {
		var b storage.Block
		if err := rows.Scan(&b.Kind, &b.Value, &b.Reason, &b.CreatedAt, &b.ExpiresAt); err != nil {
			return nil, classify("postgres: list blocks", err)
		}
		out = append(out, &b)
	}
	return out, classify("postgres: list blocks", rows.Err())
}

// DeleteBlock implements storage.BlockStore.
func (s *Store) DeleteBlock(ctx context.Context, kind, value string) error {
	tag, err := s.q(ctx).Exec(ctx, `DELETE FROM blocks WHERE kind = $1 AND value = $2`, kind, value)
	if err != nil {
		return classify("postgres: delete block", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete block: %w", storage.ErrNotFound)
	}
	return nil
}
