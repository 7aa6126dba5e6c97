package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// ResumeLogin implements storage.FlowStore under one write lock.
func (s *Store) ResumeLogin(ctx context.Context, kind, key, clientID string, at time.Time) (*storage.LoginState, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	k := storage.HashKey(key)
	l, ok := s.logins[k]
	if !ok || l.Kind != kind || expired(l.ExpiresAt, s.now()) {
		return nil, fmt.Errorf("memory: resume login: %w", storage.ErrNotFound)
	}
	u, ok := s.users[l.Subject]
	if !ok {
		return nil, fmt.Errorf("memory: resume login: user: %w", storage.ErrNotFound)
	}
	if l.LastSeen.Before(at.Add(-storage.LastSeenGranularity)) {
		touched := cloneLogin(l)
		touched.LastSeen = at
		put(tx, s.logins, k, touched)
		l = touched
	}
	out := &storage.LoginState{Session: cloneLogin(l), User: cloneUser(u)}
	out.Session.Key = key
	if c, ok := s.consents[pairKey{l.Subject, clientID}]; ok && !expired(c.ExpiresAt, s.now()) {
		out.Consent = cloneConsent(c)
	}
	return out, nil
}

// CreateAuthorizeSessions implements storage.FlowStore: every row (and
// the relying-party session) under one write lock, after every check.
func (s *Store) CreateAuthorizeSessions(ctx context.Context, a *storage.AuthorizeSessions) error {
	type row struct {
		kind tokenKind
		rec  *storage.TokenRecord
	}
	var rows []row
	for _, w := range []struct {
		kind tokenKind
		key  string
		r    fosite.Requester
	}{{kindCode, a.CodeSignature, a.Code}, {kindPKCE, a.CodeSignature, a.PKCE}, {kindOIDC, a.OIDCCode, a.OIDC}} {
		if w.r == nil {
			continue
		}
		rec, err := storage.EncodeRequest(w.key, w.r, fosite.AuthorizeCode, storage.FallbackCodeLifetime)
		if err != nil {
			return err
		}
		rows = append(rows, row{w.kind, rec})
	}
	if len(rows) == 0 || a.Code == nil {
		return fmt.Errorf("memory: create authorize sessions: no code")
	}
	tx, unlock := s.write(ctx)
	defer unlock()
	clientID := rows[0].rec.ClientID
	if c, ok := s.clients[clientID]; !ok || c.Disabled {
		return fmt.Errorf("memory: create authorize sessions: %w", errClientDisabled())
	}
	if a.JoinLogin != "" {
		l, ok := s.logins[storage.HashKey(a.JoinLogin)]
		if !ok || expired(l.ExpiresAt, s.now()) || l.SID == "" {
			return fmt.Errorf("memory: create authorize sessions: join login session: %w", storage.ErrNotFound)
		}
		put(tx, s.bc.rp, pairKey{l.SID, clientID}, rpSession{subject: l.Subject, expiresAt: l.ExpiresAt})
	}
	for _, r := range rows {
		put(tx, s.tokens[r.kind], r.rec.Key, &tokenRow{rec: *r.rec})
	}
	return nil
}

// ReadGrant implements storage.FlowStore. Reads cost nothing here, so the
// context carries nothing: Get*Session read the maps as usual, and the
// OpenID Connect request is consumed by GetOpenIDConnectSession.
func (s *Store) ReadGrant(ctx context.Context, kind storage.GrantKind, signature, _ string) (context.Context, storage.GrantOwner, error) {
	k := kindRefresh
	if kind == storage.GrantCode {
		k = kindCode
	}
	unlock := s.read(ctx)
	defer unlock()
	row, ok := s.tokens[k][storage.HashKey(signature)]
	if !ok {
		return ctx, storage.GrantOwner{}, nil
	}
	u, ok := s.users[row.rec.Subject]
	return ctx, storage.GrantOwner{Subject: row.rec.Subject, Active: ok && !u.Disabled}, nil
}
