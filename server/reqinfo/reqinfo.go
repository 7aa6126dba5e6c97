// Package reqinfo carries per-request facts (request id, authenticated client
// id, subject) from the handlers that learn them to the access log and the
// audit trail, through the request context.
package reqinfo

import (
	"context"
	"sync"
)

type ctxKey struct{}

// Info is filled in while a request is handled. The access-log middleware
// creates it; handlers set what they learn (never secrets).
type Info struct {
	ID        string
	RemoteIP  string
	UserAgent string

	mu       sync.Mutex
	clientID string
	subject  string
	route    string
}

// With returns ctx carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// From returns the request's Info, or nil outside a request.
func From(ctx context.Context) *Info {
	info, _ := ctx.Value(ctxKey{}).(*Info)
	return info
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	if info := From(ctx); info != nil {
		return info.ID
	}
	return ""
}

// SetClientID records the authenticated OAuth client. Nil-safe.
func (i *Info) SetClientID(id string) {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.clientID = id
	i.mu.Unlock()
}

// SetSubject records the authenticated end user or API key owner. Nil-safe.
func (i *Info) SetSubject(sub string) {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.subject = sub
	i.mu.Unlock()
}

// ClientID returns the recorded client id. Nil-safe.
func (i *Info) ClientID() string {
	if i == nil {
		return ""
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.clientID
}

// Subject returns the recorded subject. Nil-safe.
func (i *Info) Subject() string {
	if i == nil {
		return ""
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.subject
}

// SetRoute records the matched route template (never the raw path, which may
// carry ids). Nil-safe.
func (i *Info) SetRoute(route string) {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.route = route
	i.mu.Unlock()
}

// Route returns the matched route template, or "" when none matched.
func (i *Info) Route() string {
	if i == nil {
		return ""
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.route
}
