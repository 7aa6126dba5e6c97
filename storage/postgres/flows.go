package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// ResumeLogin implements storage.FlowStore in one statement: the login
// session, its user and the user's consent to the client. LastSeen is
// written only when it is LastSeenGranularity behind, so the statement
// usually writes nothing: every authorization request of a browser would
// otherwise update (and row-lock) the same login session row and wait for
// a commit.
func (s *Store) ResumeLogin(ctx context.Context, kind, key, clientID string, at time.Time) (*storage.LoginState, error) {
	var (
		ls         storage.LoginSession
		u          storage.User
		data       []byte
		hasConsent bool
		c          storage.Consent
		cExp       *time.Time
	)
	dest := []any{&ls.Kind, &ls.Subject, &ls.AuthTime, &ls.LastSeen, &ls.ExpiresAt, &data, &ls.SID}
	dest = append(dest, userDest(&u)...)
	dest = append(dest, &hasConsent, &c.Scopes, &c.GrantedAt, &cExp)
	err := s.q(ctx).QueryRow(ctx, `WITH l AS (
			SELECT key, kind, subject, auth_time, last_seen, expires_at, data, sid FROM login_sessions
			WHERE key = $1 AND kind = $2 AND expires_at > $3
		), touch AS (
			UPDATE login_sessions s SET last_seen = $4::timestamptz FROM l
			WHERE s.key = l.key AND s.last_seen < $5::timestamptz
		)
		SELECT l.kind, l.subject, l.auth_time,
			CASE WHEN l.last_seen < $5::timestamptz THEN $4::timestamptz ELSE l.last_seen END,
			l.expires_at, l.data, l.sid, `+prefixed("u.", userSelect)+`,
			c.subject IS NOT NULL, COALESCE(c.scopes, '{}'), COALESCE(c.granted_at, 'epoch'), c.expires_at
		FROM l JOIN users u ON u.id = l.subject
		LEFT JOIN consents c ON c.subject = l.subject AND c.client_id = $6 AND (c.expires_at IS NULL OR c.expires_at > $3)`,
		storage.HashKey(key), kind, s.now(), at, at.Add(-storage.LastSeenGranularity), clientID).Scan(dest...)
	if err != nil {
		return nil, classify("postgres: resume login", err)
	}
	ls.Key = key
	if err := json.Unmarshal(data, &ls.Data); err != nil {
		return nil, fmt.Errorf("postgres: decode login session: %w", err)
	}
	if len(ls.Data) == 0 {
		ls.Data = nil
	}
	out := &storage.LoginState{Session: &ls, User: finishUser(&u)}
	if hasConsent {
		c.Subject, c.ClientID = ls.Subject, clientID
		c.Scopes = nilIfEmpty(c.Scopes)
		c.ExpiresAt = fromNull(cExp)
		out.Consent = &c
	}
	return out, nil
}

// prefixed qualifies every column of a comma-separated list.
func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = prefix + p
	}
	return strings.Join(parts, ", ")
}

// CreateAuthorizeSessions implements storage.FlowStore in one statement:
// the client row FOR SHARE and only while it is not disabled (the guard of
// every mint outside a grant transaction, see createToken), the login
// session FOR KEY SHARE when the client joins it (so a logout deleting it
// either waits for this statement or makes it write nothing, as in
// JoinLoginSession), the relying-party session, and the token rows. Each
// INSERT selects from both guards, so any missing one writes nothing.
func (s *Store) CreateAuthorizeSessions(ctx context.Context, a *storage.AuthorizeSessions) error {
	if a.Code == nil {
		return fmt.Errorf("postgres: create authorize sessions: no code")
	}
	type row struct {
		kind, key string
		r         fosite.Requester
	}
	var rows []row
	for _, w := range []row{{kindCode, a.CodeSignature, a.Code}, {kindPKCE, a.CodeSignature, a.PKCE}, {kindOIDC, a.OIDCCode, a.OIDC}} {
		if w.r != nil {
			rows = append(rows, w)
		}
	}
	// $1 client id, $2 login key ('' when not joining), $3 now; then the
	// rows, eight parameters each.
	args := []any{"", storage.HashKey(a.JoinLogin), s.now()}
	values := make([]string, 0, len(rows))
	for i, w := range rows {
		rec, err := storage.EncodeRequest(w.key, w.r, fosite.AuthorizeCode, storage.FallbackCodeLifetime)
		if err != nil {
			return err
		}
		if rec.RequestedAt.IsZero() {
			rec.RequestedAt = s.now()
		}
		if i == 0 {
			args[0] = rec.ClientID
		}
		p := len(args)
		values = append(values, fmt.Sprintf("($%d::text, $%d::text, $%d::text, $%d::text, $%d::boolean, $%d::timestamptz, $%d::timestamptz, $%d::jsonb)",
			p+1, p+2, p+3, p+4, p+5, p+6, p+7, p+8))
		args = append(args, w.kind, rec.Key, rec.RequestID, rec.Subject, rec.Active, rec.RequestedAt, rec.ExpiresAt, rec.Data)
	}
	join := a.JoinLogin != ""
	// Without a login to join, l is one empty row (its parameters typed
	// all the same).
	login := `SELECT ''::text AS sid, ''::text AS subject, $3::timestamptz AS expires_at WHERE $2::text IS NOT NULL`
	if join {
		login = `SELECT sid, subject, expires_at FROM login_sessions
			WHERE key = $2::text AND expires_at > $3::timestamptz AND sid <> '' FOR KEY SHARE`
	}
	var clientOK, loginOK bool
	err := s.q(ctx).QueryRow(ctx, `WITH c AS (
			SELECT id FROM clients WHERE id = $1::text AND NOT disabled FOR SHARE
		), l AS (`+login+`
		), j AS (
			INSERT INTO rp_sessions (sid, client_id, subject, expires_at)
			SELECT l.sid, c.id, l.subject, l.expires_at FROM c, l WHERE `+fmt.Sprint(join)+`
			ON CONFLICT (sid, client_id) DO NOTHING
		), t AS (
			INSERT INTO token_sessions (kind, key, request_id, client_id, subject, active, requested_at, expires_at, data)
			SELECT v.kind, v.key, v.request_id, c.id, v.subject, v.active, v.requested_at, v.expires_at, v.data
			FROM c, l, (VALUES `+strings.Join(values, ", ")+`)
				AS v (kind, key, request_id, subject, active, requested_at, expires_at, data)
		)
		SELECT EXISTS (SELECT 1 FROM c), EXISTS (SELECT 1 FROM l)`, args...).Scan(&clientOK, &loginOK)
	switch {
	case err != nil:
		return classify("postgres: create authorize sessions", err)
	case !clientOK:
		return fmt.Errorf("postgres: create authorize sessions: %w", errClientDisabled())
	case !loginOK:
		return fmt.Errorf("postgres: create authorize sessions: join login session: %w", storage.ErrNotFound)
	}
	return nil
}

// ReadGrant implements storage.FlowStore: one statement reads the code or
// refresh token, a code's PKCE row, the client and the user's state. What
// it read rides in the returned context for getToken.
//
// Given the raw code, the code's OpenID Connect request is consumed by
// InvalidateAuthorizeCodeSession in the statement that consumes the code,
// inside the exchange's transaction: one round trip and one commit less
// than its own DELETE … RETURNING after the commit, and it goes with the
// code or stays with it.
func (s *Store) ReadGrant(ctx context.Context, kind storage.GrantKind, signature, code string) (context.Context, storage.GrantOwner, error) {
	k := kindRefresh
	if kind == storage.GrantCode {
		k = kindCode
	}
	g := &grantAhead{store: s, kind: k, key: storage.HashKey(signature)}
	if k == kindCode && code != "" {
		g.oidcKey = storage.HashKey(code)
	}
	var (
		hasClient bool
		cs        clientScan
		owner     storage.GrantOwner
	)
	dest := append([]any{&g.rec.Active, &g.rec.Data, &g.pkce, &hasClient}, cs.dest()...)
	dest = append(dest, &owner.Subject, &owner.Active)
	err := s.q(ctx).QueryRow(ctx, `SELECT t.active, t.data, p.data, c.id IS NOT NULL, `+clientJoinSelect+`,
			t.subject, COALESCE(u.id <> '' AND NOT u.disabled, false)
		FROM token_sessions t
		LEFT JOIN token_sessions p ON t.kind = 'code' AND p.kind = 'pkce' AND p.key = t.key
		LEFT JOIN clients c ON c.id = t.client_id
		LEFT JOIN users u ON u.id = t.subject
		WHERE t.kind = $1 AND t.key = $2`, k, g.key).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return context.WithValue(ctx, aheadKey{}, g), storage.GrantOwner{}, nil
	}
	if err != nil {
		return ctx, storage.GrantOwner{}, classify("postgres: read grant", err)
	}
	g.found = true
	if hasClient {
		if g.client, err = cs.client(); err != nil {
			return ctx, storage.GrantOwner{}, err
		}
	}
	return context.WithValue(ctx, aheadKey{}, g), owner, nil
}

type aheadKey struct{}

// grantAhead is what ReadGrant read: the rows of one code (and its PKCE
// request) or refresh token.
type grantAhead struct {
	store *Store
	kind  string
	// key is HashKey of the signature.
	key   string
	found bool
	rec   storage.TokenRecord
	// pkce is the code's PKCE row data, nil when there is none.
	pkce []byte
	// client is nil when the row's client is gone.
	client *storage.Client

	// oidcKey is HashKey of the raw code of a GrantCode, when known: the
	// code's OpenID Connect request is consumed with the code, and
	// handed out once by oidcSession.
	oidcKey string
	// mu guards the consumed OpenID Connect request.
	mu sync.Mutex
	// oidcTaken is set once the consuming transaction committed; oidc is
	// the request's data then (nil: there was none).
	oidcTaken bool
	oidc      []byte
}

// takeOIDC records the OpenID Connect request data the code's
// consumption deleted (nil: none), for oidcSession.
func (g *grantAhead) takeOIDC(data []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.oidcTaken, g.oidc = true, data
}

// oidcSession hands out, once, the OpenID Connect request of code that
// the code's consumption took; held is false when it took none (and the
// table decides).
func (g *grantAhead) oidcSession(code string, session fosite.Session) (req fosite.Requester, held bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.oidcTaken || g.oidcKey == "" || storage.HashKey(code) != g.oidcKey {
		return nil, false, nil
	}
	data := g.oidc
	g.oidc = nil
	if data == nil || g.client == nil {
		return nil, true, fmt.Errorf("postgres: get %s session: %w", kindOIDC, storage.ErrNotFound)
	}
	req, err = storage.DecodeRequest(&storage.TokenRecord{Active: true, Data: data}, g.client.Clone(), session)
	return req, true, err
}

// aheadFrom returns what ReadGrant of s put in ctx, or nil.
func aheadFrom(ctx context.Context, s *Store) *grantAhead {
	g, _ := ctx.Value(aheadKey{}).(*grantAhead)
	if g == nil || g.store != s {
		return nil
	}
	return g
}

// get answers getToken for (kind, key) from what was read, as loadToken
// would have then; held is false when it holds nothing about that row.
func (g *grantAhead) get(kind, key string, session fosite.Session) (req fosite.Requester, active, held bool, err error) {
	if kind != g.kind && (kind != kindPKCE || g.kind != kindCode) {
		return nil, false, false, nil
	}
	if storage.HashKey(key) != g.key {
		return nil, false, false, nil
	}
	rec := g.rec
	if kind == kindPKCE {
		if g.pkce == nil {
			return nil, false, true, fmt.Errorf("postgres: get %s session: %w", kind, storage.ErrNotFound)
		}
		rec = storage.TokenRecord{Active: true, Data: g.pkce}
	}
	if !g.found || g.client == nil {
		return nil, false, true, fmt.Errorf("postgres: get %s session: %w", kind, storage.ErrNotFound)
	}
	req, err = storage.DecodeRequest(&rec, g.client.Clone(), session)
	if err != nil {
		return nil, false, true, err
	}
	return req, rec.Active, true, nil
}
