package oauth

import (
	"context"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// Audit event names emitted by this package. Details never hold a token,
// code, secret or password.
const (
	EventLogin          = "oauth.login"
	EventLogout         = "oauth.logout"
	EventConsentGranted = "oauth.consent.granted"
	EventConsentDenied  = "oauth.consent.denied"
	EventTokenIssued    = "oauth.token.issued" // #nosec G101 -- an event name, not a credential
	EventRefreshReuse   = "oauth.refresh.reuse_detected"
	EventTokenRevoked   = "oauth.token.revoked" // #nosec G101 -- an event name, not a credential

	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// audit fills in time and request facts and hands e to cfg.Audit.
func (p *Provider) audit(ctx context.Context, e storage.AuditEvent) {
	if p.cfg.Audit == nil {
		return
	}
	p.fillAudit(ctx, &e)
	p.cfg.Audit(ctx, e)
}

// auditToken prepares e, the event of the token the request is about to
// mint, with cfg.AuditToken: mint with the returned context, and call
// issued once the mint succeeded. Without cfg.AuditToken, issued hands e to
// cfg.Audit after the fact.
func (p *Provider) auditToken(ctx context.Context, e storage.AuditEvent) (_ context.Context, issued func(context.Context)) {
	switch {
	case p.cfg.AuditToken != nil:
		p.fillAudit(ctx, &e)
		return p.cfg.AuditToken(ctx, e)
	case p.cfg.Audit != nil:
		return ctx, func(ctx context.Context) { p.audit(ctx, e) }
	}
	return ctx, func(context.Context) {}
}

// fillAudit fills in e's time, request facts and actor.
func (p *Provider) fillAudit(ctx context.Context, e *storage.AuditEvent) {
	e.Time = p.cfg.Now().UTC()
	if info := reqinfo.From(ctx); info != nil {
		e.RequestID = info.ID
		e.SourceIP = info.RemoteIP
		e.UserAgent = info.UserAgent
	}
	if e.Actor == "" {
		switch {
		case e.Subject != "":
			e.Actor = e.Subject
		case e.ClientID != "":
			e.Actor = e.ClientID
		}
	}
}
