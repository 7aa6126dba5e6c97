package memory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

func cloneUser(u *storage.User) *storage.User {
	c := *u
	c.AdminScopes = cloneStrings(u.AdminScopes)
	c.TOTPSecretSealed = cloneBytes(u.TOTPSecretSealed)
	return &c
}

// usernameTaken reports whether another user holds username (case-insensitive).
func (s *Store) usernameTaken(username, exceptID string) bool {
	for id, u := range s.users {
		if id != exceptID && strings.EqualFold(u.Username, username) {
			return true
		}
	}
	return false
}

// CreateUser implements storage.UserStore. Zero timestamps are set to now
// and Version starts at 1; both are written back to u.
func (s *Store) CreateUser(ctx context.Context, u *storage.User) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if _, ok := s.users[u.ID]; ok || s.usernameTaken(u.Username, "") {
		return fmt.Errorf("memory: user: %w", storage.ErrConflict)
	}
	u.CreatedAt, u.UpdatedAt = s.created(u.CreatedAt, u.UpdatedAt)
	u.Version = 1
	put(tx, s.users, u.ID, cloneUser(u))
	return nil
}

// UserByID implements storage.UserStore.
func (s *Store) UserByID(ctx context.Context, id string) (*storage.User, error) {
	unlock := s.read(ctx)
	defer unlock()
	u, ok := s.users[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return cloneUser(u), nil
}

// UserByUsername implements storage.UserStore.
func (s *Store) UserByUsername(ctx context.Context, username string) (*storage.User, error) {
	unlock := s.read(ctx)
	defer unlock()
	for _, u := range s.users {
		if strings.EqualFold(u.Username, username) {
			return cloneUser(u), nil
		}
	}
	return nil, storage.ErrNotFound
}

// ListUsers implements storage.UserStore; NameContains matches the username.
func (s *Store) ListUsers(ctx context.Context, opts storage.ListOptions) ([]*storage.User, error) {
	unlock := s.read(ctx)
	defer unlock()
	return page(s.users, opts, func(u *storage.User) string { return u.Username }, cloneUser), nil
}

// UpdateUser implements storage.UserStore; on success u.Version,
// u.UpdatedAt (now) and u.CreatedAt (kept from creation) hold the stored
// values. Renaming onto a taken username is ErrConflict.
func (s *Store) UpdateUser(ctx context.Context, u *storage.User, expectVersion int64) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	old, ok := s.users[u.ID]
	if !ok {
		return storage.ErrNotFound
	}
	if old.Version != expectVersion {
		return fmt.Errorf("memory: user version %d: %w", expectVersion, storage.ErrPreconditionFailed)
	}
	if s.usernameTaken(u.Username, u.ID) {
		return fmt.Errorf("memory: username: %w", storage.ErrConflict)
	}
	u.CreatedAt, u.UpdatedAt = old.CreatedAt, s.stamp()
	u.Version = expectVersion + 1
	put(tx, s.users, u.ID, cloneUser(u))
	return nil
}

// DeleteUser implements storage.UserStore. The user's consents and login
// sessions go with it; tokens are revoked separately
// (RevokeTokensBySubject) because the caller decides whether to audit that.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if _, ok := s.users[id]; !ok {
		return storage.ErrNotFound
	}
	del(tx, s.users, id)
	for k := range s.consents {
		if k.a == id {
			del(tx, s.consents, k)
		}
	}
	for k, l := range s.logins {
		if l.Subject == id {
			del(tx, s.logins, k)
		}
	}
	return nil
}

func cloneConsent(c *storage.Consent) *storage.Consent {
	out := *c
	out.Scopes = cloneStrings(c.Scopes)
	return &out
}

// expired reports whether a non-zero expiry lies at or before now. A zero
// expiry never expires.
func expired(exp, now time.Time) bool { return !exp.IsZero() && !exp.After(now) }

// SaveConsent implements storage.ConsentStore (upsert). A zero GrantedAt is
// set to now and written back to c.
func (s *Store) SaveConsent(ctx context.Context, c *storage.Consent) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if c.GrantedAt.IsZero() {
		c.GrantedAt = s.stamp()
	}
	put(tx, s.consents, pairKey{c.Subject, c.ClientID}, cloneConsent(c))
	return nil
}

// GrantConsent implements storage.ConsentStore: read and merge happen
// under the one write lock, so a concurrent RevokeConsent is either before
// (nothing to merge) or after (the merged consent goes).
func (s *Store) GrantConsent(ctx context.Context, c *storage.Consent) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if c.GrantedAt.IsZero() {
		c.GrantedAt = s.stamp()
	}
	merged := cloneStrings(c.Scopes)
	if prev, ok := s.consents[pairKey{c.Subject, c.ClientID}]; ok {
		for _, sc := range prev.Scopes {
			if !slices.Contains(merged, sc) {
				merged = append(merged, sc)
			}
		}
	}
	c.Scopes = merged
	put(tx, s.consents, pairKey{c.Subject, c.ClientID}, cloneConsent(c))
	return nil
}

// GetConsent implements storage.ConsentStore. An expired consent is
// ErrNotFound, so a caller that forgets to check expiry cannot skip consent.
func (s *Store) GetConsent(ctx context.Context, subject, clientID string) (*storage.Consent, error) {
	unlock := s.read(ctx)
	defer unlock()
	c, ok := s.consents[pairKey{subject, clientID}]
	if !ok || expired(c.ExpiresAt, s.now()) {
		return nil, storage.ErrNotFound
	}
	return cloneConsent(c), nil
}

// ListConsents implements storage.ConsentStore: unexpired consents of the
// subject ordered by client id.
func (s *Store) ListConsents(ctx context.Context, subject string) ([]*storage.Consent, error) {
	unlock := s.read(ctx)
	defer unlock()
	now := s.now()
	out := []*storage.Consent{}
	for k, c := range s.consents {
		if k.a == subject && !expired(c.ExpiresAt, now) {
			out = append(out, cloneConsent(c))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out, nil
}

// RevokeConsent implements storage.ConsentStore.
func (s *Store) RevokeConsent(ctx context.Context, subject, clientID string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k := pairKey{subject, clientID}
	if _, ok := s.consents[k]; !ok {
		return storage.ErrNotFound
	}
	del(tx, s.consents, k)
	return nil
}

func cloneLogin(l *storage.LoginSession) *storage.LoginSession {
	out := *l
	out.Data = cloneStringMap(l.Data)
	return &out
}

// CreateLoginSession implements storage.LoginSessionStore. Only
// HashKey(s.Key) is kept; a duplicate key is ErrConflict.
func (s *Store) CreateLoginSession(ctx context.Context, l *storage.LoginSession) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k := storage.HashKey(l.Key)
	if _, ok := s.logins[k]; ok {
		return fmt.Errorf("memory: login session: %w", storage.ErrConflict)
	}
	c := cloneLogin(l)
	c.Key = ""
	put(tx, s.logins, k, c)
	return nil
}

// GetLoginSession implements storage.LoginSessionStore. The returned Key is
// the key asked for.
func (s *Store) GetLoginSession(ctx context.Context, key string) (*storage.LoginSession, error) {
	unlock := s.read(ctx)
	defer unlock()
	l, ok := s.logins[storage.HashKey(key)]
	if !ok || expired(l.ExpiresAt, s.now()) {
		return nil, storage.ErrNotFound
	}
	c := cloneLogin(l)
	c.Key = key
	return c, nil
}

// TouchLoginSession implements storage.LoginSessionStore.
func (s *Store) TouchLoginSession(ctx context.Context, key string, at time.Time) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k := storage.HashKey(key)
	l, ok := s.logins[k]
	if !ok {
		return storage.ErrNotFound
	}
	c := cloneLogin(l)
	c.LastSeen = at
	put(tx, s.logins, k, c)
	return nil
}

// DeleteLoginSession implements storage.LoginSessionStore; deleting an
// unknown session is not an error (signing out twice).
func (s *Store) DeleteLoginSession(ctx context.Context, key string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	del(tx, s.logins, storage.HashKey(key))
	return nil
}

// DeleteLoginSessionsBySubject implements storage.LoginSessionStore.
func (s *Store) DeleteLoginSessionsBySubject(ctx context.Context, subject string) (int64, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	var n int64
	for k, l := range s.logins {
		if l.Subject == subject {
			del(tx, s.logins, k)
			n++
		}
	}
	return n, nil
}

func cloneSigningKey(k *storage.SigningKey) *storage.SigningKey {
	out := *k
	out.PublicJWK = cloneBytes(k.PublicJWK)
	out.SealedPrivate = cloneBytes(k.SealedPrivate)
	return &out
}

// CreateSigningKey implements storage.SigningKeyStore. A zero CreatedAt is
// set to now and written back to k.
func (s *Store) CreateSigningKey(ctx context.Context, k *storage.SigningKey) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if _, ok := s.signingKeys[k.KID]; ok {
		return fmt.Errorf("memory: signing key: %w", storage.ErrConflict)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.stamp()
	}
	put(tx, s.signingKeys, k.KID, cloneSigningKey(k))
	return nil
}

// ListSigningKeys implements storage.SigningKeyStore, oldest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]*storage.SigningKey, error) {
	unlock := s.read(ctx)
	defer unlock()
	out := make([]*storage.SigningKey, 0, len(s.signingKeys))
	for _, k := range s.signingKeys {
		out = append(out, cloneSigningKey(k))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].KID < out[j].KID
	})
	return out, nil
}

// TransitionSigningKey implements storage.SigningKeyStore. The check and the
// write happen under one lock, so concurrent callers see exactly one winner.
func (s *Store) TransitionSigningKey(ctx context.Context, kid string, from, to storage.KeyState, at time.Time) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k, ok := s.signingKeys[kid]
	if !ok {
		return storage.ErrNotFound
	}
	if k.State != from {
		return fmt.Errorf("memory: signing key not %s: %w", from, storage.ErrPreconditionFailed)
	}
	c := cloneSigningKey(k)
	c.State = to
	switch to {
	case storage.KeyActive:
		c.ActivatedAt = at
	case storage.KeyRetired:
		c.RetiredAt = at
	case storage.KeyRevoked:
		c.RevokedAt = at
	}
	put(tx, s.signingKeys, kid, c)
	return nil
}

// ResealSigningKey implements storage.SigningKeyStore.
func (s *Store) ResealSigningKey(ctx context.Context, kid string, sealed []byte) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k, ok := s.signingKeys[kid]
	if !ok {
		return storage.ErrNotFound
	}
	c := cloneSigningKey(k)
	c.SealedPrivate = cloneBytes(sealed)
	put(tx, s.signingKeys, kid, c)
	return nil
}

// DeleteSigningKey implements storage.SigningKeyStore.
func (s *Store) DeleteSigningKey(ctx context.Context, kid string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if _, ok := s.signingKeys[kid]; !ok {
		return storage.ErrNotFound
	}
	del(tx, s.signingKeys, kid)
	return nil
}

func cloneAPIKey(k *storage.APIKey) *storage.APIKey {
	out := *k
	out.Scopes = cloneStrings(k.Scopes)
	out.SealedSuccessorSecret = cloneBytes(k.SealedSuccessorSecret)
	return &out
}

// CreateAPIKey implements storage.APIKeyStore. Version starts at 1 and a
// zero CreatedAt is set to now; both are written back to k.
func (s *Store) CreateAPIKey(ctx context.Context, k *storage.APIKey) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if _, ok := s.apiKeys[k.ID]; ok {
		return fmt.Errorf("memory: api key: %w", storage.ErrConflict)
	}
	if s.ownerDisabled(k) {
		return fmt.Errorf("memory: api key: %w", storage.ErrOwnerDisabled)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.stamp()
	}
	k.Version = 1
	put(tx, s.apiKeys, k.ID, cloneAPIKey(k))
	return nil
}

// ownerDisabled reports whether k's owner is a disabled client or user: as
// on Postgres, such an owner gets no new key. The caller holds the write
// lock, which orders this against the disable.
func (s *Store) ownerDisabled(k *storage.APIKey) bool {
	if c, ok := s.clients[k.OwnerID]; ok && k.OwnerType == "client" && c.Disabled {
		return true
	}
	u, ok := s.users[k.OwnerID]
	return ok && k.OwnerType == "user" && u.Disabled
}

// APIKeyByID implements storage.APIKeyStore.
func (s *Store) APIKeyByID(ctx context.Context, id string) (*storage.APIKey, error) {
	unlock := s.read(ctx)
	defer unlock()
	k, ok := s.apiKeys[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return cloneAPIKey(k), nil
}

// ListAPIKeys implements storage.APIKeyStore.
func (s *Store) ListAPIKeys(ctx context.Context, opts storage.ListOptions) ([]*storage.APIKey, error) {
	unlock := s.read(ctx)
	defer unlock()
	return page(s.apiKeys, opts, func(k *storage.APIKey) string { return k.Name }, cloneAPIKey), nil
}

// UpdateAPIKey implements storage.APIKeyStore: every field but ID and
// CreatedAt is replaced; on success k.Version holds the new version and
// k.CreatedAt the stored one.
func (s *Store) UpdateAPIKey(ctx context.Context, k *storage.APIKey, expectVersion int64) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	old, ok := s.apiKeys[k.ID]
	if !ok {
		return storage.ErrNotFound
	}
	if old.Version != expectVersion {
		return fmt.Errorf("memory: api key version %d: %w", expectVersion, storage.ErrPreconditionFailed)
	}
	k.CreatedAt = old.CreatedAt
	k.Version = expectVersion + 1
	c := cloneAPIKey(k)
	// LastUsedAt only moves forward, as in TouchAPIKeys: an admin edit
	// carrying a stale copy must not erase use recorded meanwhile.
	if c.LastUsedAt.Before(old.LastUsedAt) {
		c.LastUsedAt = old.LastUsedAt
	}
	put(tx, s.apiKeys, k.ID, c)
	return nil
}

// TouchAPIKeys implements storage.APIKeyStore. LastUsedAt only moves
// forward (replicas flush out of order) and Version is unchanged, so a
// touch never invalidates an admin's If-Match. Unknown ids are ignored.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	for id, at := range lastUsed {
		k, ok := s.apiKeys[id]
		if !ok || !at.After(k.LastUsedAt) {
			continue
		}
		c := cloneAPIKey(k)
		c.LastUsedAt = at
		put(tx, s.apiKeys, id, c)
	}
	return nil
}

func cloneAudit(e *storage.AuditEvent) *storage.AuditEvent {
	out := *e
	out.Details = cloneStringMap(e.Details)
	return &out
}

// AppendAudit implements storage.AuditStore. It assigns e.ID (increasing)
// and fills a zero e.Time from the store's clock. Like a Postgres sequence,
// ids are not reused after a rollback.
func (s *Store) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	s.appendAudit(tx, e)
	return nil
}

// appendAudit appends e; the caller holds the write lock.
func (s *Store) appendAudit(tx *txn, e *storage.AuditEvent) {
	s.nextAuditID++
	e.ID = s.nextAuditID
	if e.Time.IsZero() {
		e.Time = s.stamp()
	}
	put(tx, s.audit, e.ID, cloneAudit(e))
}

// ListAudit implements storage.AuditStore: newest (highest id) first; Since
// is inclusive, Until exclusive.
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]*storage.AuditEvent, error) {
	unlock := s.read(ctx)
	defer unlock()
	out := []*storage.AuditEvent{}
	for id, e := range s.audit {
		switch {
		case f.BeforeID > 0 && id >= f.BeforeID,
			!f.Since.IsZero() && e.Time.Before(f.Since),
			!f.Until.IsZero() && !e.Time.Before(f.Until),
			f.Actor != "" && e.Actor != f.Actor,
			f.Event != "" && e.Event != f.Event,
			f.ClientID != "" && e.ClientID != f.ClientID:
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	for i, e := range out {
		out[i] = cloneAudit(e)
	}
	return out, nil
}

// PutBlock implements storage.BlockStore (upsert on kind and value). A zero
// CreatedAt is set to now and written back to b.
func (s *Store) PutBlock(ctx context.Context, b *storage.Block) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if b.CreatedAt.IsZero() {
		b.CreatedAt = s.stamp()
	}
	c := *b
	put(tx, s.blocks, pairKey{b.Kind, b.Value}, &c)
	return nil
}

// ListBlocks implements storage.BlockStore: blocks not expired at now,
// ordered by kind and value.
func (s *Store) ListBlocks(ctx context.Context, now time.Time) ([]*storage.Block, error) {
	unlock := s.read(ctx)
	defer unlock()
	out := []*storage.Block{}
	for _, b := range s.blocks {
		if !expired(b.ExpiresAt, now) {
			c := *b
			out = append(out, &c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Value < out[j].Value
	})
	return out, nil
}

// DeleteBlock implements storage.BlockStore.
func (s *Store) DeleteBlock(ctx context.Context, kind, value string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k := pairKey{kind, value}
	if _, ok := s.blocks[k]; !ok {
		return storage.ErrNotFound
	}
	del(tx, s.blocks, k)
	return nil
}
