package memory

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// GetClient implements fosite.ClientManager; the result is a *storage.Client.
// A disabled client is reported as unknown, so fosite refuses it as
// invalid_client everywhere; ClientByID still returns it for the admin API.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.ClientByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Disabled {
		return nil, fmt.Errorf("memory: client disabled: %w", storage.ErrNotFound)
	}
	return c, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager: a JTI seen before
// and not yet expired is fosite.ErrJTIKnown (RFC 7523 §3 replay protection).
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	unlock := s.read(ctx)
	defer unlock()
	if exp, ok := s.jtis[storage.HashKey(jti)]; ok && exp.After(s.now()) {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT implements fosite.ClientManager. An expired entry
// for the same JTI is replaced: the assertion can no longer be replayed.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k := storage.HashKey(jti)
	if old, ok := s.jtis[k]; ok && old.After(s.now()) {
		return fosite.ErrJTIKnown
	}
	put(tx, s.jtis, k, exp)
	return nil
}

// CreateClient implements storage.ClientStore. Zero timestamps are set to
// now and Version starts at 1; both are written back to c.
func (s *Store) CreateClient(ctx context.Context, c *storage.Client) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if _, ok := s.clients[c.ID]; ok {
		return fmt.Errorf("memory: client: %w", storage.ErrConflict)
	}
	c.CreatedAt, c.UpdatedAt = s.created(c.CreatedAt, c.UpdatedAt)
	c.Version = 1
	put(tx, s.clients, c.ID, c.Clone())
	return nil
}

// ClientByID implements storage.ClientStore.
func (s *Store) ClientByID(ctx context.Context, id string) (*storage.Client, error) {
	unlock := s.read(ctx)
	defer unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return c.Clone(), nil
}

// ListClients implements storage.ClientStore.
func (s *Store) ListClients(ctx context.Context, opts storage.ListOptions) ([]*storage.Client, error) {
	unlock := s.read(ctx)
	defer unlock()
	return page(s.clients, opts, func(c *storage.Client) string { return c.Name }, (*storage.Client).Clone), nil
}

// UpdateClient implements storage.ClientStore; on success c.Version,
// c.UpdatedAt (now) and c.CreatedAt (kept from creation) hold the stored
// values.
func (s *Store) UpdateClient(ctx context.Context, c *storage.Client, expectVersion int64) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	old, ok := s.clients[c.ID]
	if !ok {
		return storage.ErrNotFound
	}
	if old.Version != expectVersion {
		return fmt.Errorf("memory: client version %d: %w", expectVersion, storage.ErrPreconditionFailed)
	}
	c.CreatedAt, c.UpdatedAt = old.CreatedAt, s.stamp()
	c.Version = expectVersion + 1
	put(tx, s.clients, c.ID, c.Clone())
	return nil
}

// DeleteClient implements storage.ClientStore, taking every token session
// of the client and every consent granted to it along.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if _, ok := s.clients[id]; !ok {
		return storage.ErrNotFound
	}
	del(tx, s.clients, id)
	del(tx, s.regTokens, id)
	for _, k := range allKinds {
		s.deleteWhere(tx, k, func(r *tokenRow) bool { return r.rec.ClientID == id })
	}
	for k := range s.consents {
		if k.b == id {
			del(tx, s.consents, k)
		}
	}
	return nil
}

// page returns copies (clone) of the values of m matching opts, ordered by
// id: after opts.After, name containing opts.NameContains
// (case-insensitive), at most opts.Limit of them (0 means all).
func page[V any](m map[string]V, opts storage.ListOptions, name func(V) string, clone func(V) V) []V {
	needle := strings.ToLower(opts.NameContains)
	ids := make([]string, 0, len(m))
	for id, v := range m {
		if id <= opts.After && opts.After != "" {
			continue
		}
		if needle != "" && !strings.Contains(strings.ToLower(name(v)), needle) {
			continue
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if opts.Limit > 0 && len(ids) > opts.Limit {
		ids = ids[:opts.Limit]
	}
	out := make([]V, len(ids))
	for i, id := range ids {
		out[i] = clone(m[id])
	}
	return out
}
