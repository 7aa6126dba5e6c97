package storage

import (
	"context"
	"sync/atomic"
)

// TokenAudit carries the audit event of the access token a request is
// about to mint from the audit sink, which shapes and sanitizes it, to the
// store, which writes it together with the token: in the same statement
// (Postgres) or under the same lock and transaction (memory). So every
// issued token has its audit row, and a mint that is refused or rolled
// back leaves none, at the cost of no extra round trip.
//
// The store takes the event with Take when it writes an access token
// session; only the first access token of the request takes it. The sink
// reads Taken afterwards: an event no store took (a store without this
// capability, a grant that minted no access token) is appended by the sink
// itself.
type TokenAudit struct {
	event AuditEvent
	taken atomic.Bool
}

// NewTokenAudit returns a TokenAudit for e. e must be complete and
// sanitized: the store writes it as it is.
func NewTokenAudit(e AuditEvent) *TokenAudit { return &TokenAudit{event: e} }

type tokenAuditKey struct{}

// WithTokenAudit returns a context carrying a.
func WithTokenAudit(ctx context.Context, a *TokenAudit) context.Context {
	return context.WithValue(ctx, tokenAuditKey{}, a)
}

// TakeTokenAudit returns the event carried by ctx to its first caller, and
// nil to every later one or when ctx carries none. The caller must store
// the event atomically with the token it is writing: both or neither.
func TakeTokenAudit(ctx context.Context) *AuditEvent {
	a, ok := ctx.Value(tokenAuditKey{}).(*TokenAudit)
	if !ok || a == nil || !a.taken.CompareAndSwap(false, true) {
		return nil
	}
	return &a.event
}

// Taken reports whether a store took the event. Read it only after the
// mint succeeded: the event is then stored exactly when it was taken.
func (a *TokenAudit) Taken() bool { return a.taken.Load() }

// Event returns the event (with the id the store assigned, once taken and
// stored).
func (a *TokenAudit) Event() *AuditEvent { return &a.event }
