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
	p.cfg.Audit(ctx, e)
}
