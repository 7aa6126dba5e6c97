package memory

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// deviceState holds device authorizations under their own mutex. Each
// method is one critical section, which gives the single-winner answers
// the Postgres store gets from one UPDATE. Like the guards, device rows
// stay outside the transaction journal: the token endpoint decides a poll
// on its own, never inside a transaction.
type deviceState struct {
	mu     sync.Mutex
	byCode map[string]*storage.DeviceAuthorization // by device code hash
	byUser map[string]string                       // user code hash -> device code hash
}

func (d *deviceState) init() {
	if d.byCode == nil {
		d.byCode = map[string]*storage.DeviceAuthorization{}
		d.byUser = map[string]string{}
	}
}

func copyDevice(d *storage.DeviceAuthorization) *storage.DeviceAuthorization {
	out := *d
	out.Scopes = slices.Clone(d.Scopes)
	out.Audience = slices.Clone(d.Audience)
	out.Request = slices.Clone(d.Request)
	return &out
}

// CreateDeviceAuthorization implements storage.DeviceStore.
func (s *Store) CreateDeviceAuthorization(_ context.Context, d *storage.DeviceAuthorization) error {
	st := &s.devices
	st.mu.Lock()
	defer st.mu.Unlock()
	st.init()
	if _, ok := st.byCode[d.DeviceCodeHash]; ok {
		return storage.ErrConflict
	}
	if _, ok := st.byUser[d.UserCodeHash]; ok {
		return storage.ErrConflict
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = s.stamp()
	}
	d.Status = storage.DevicePending
	row := copyDevice(d)
	row.Scopes, row.Audience = nilIfEmptyStrings(row.Scopes), nilIfEmptyStrings(row.Audience)
	st.byCode[d.DeviceCodeHash] = row
	st.byUser[d.UserCodeHash] = d.DeviceCodeHash
	return nil
}

func nilIfEmptyStrings(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	return v
}

// DeviceAuthorizationByUserCode implements storage.DeviceStore.
func (s *Store) DeviceAuthorizationByUserCode(_ context.Context, userCodeHash string, now time.Time) (*storage.DeviceAuthorization, error) {
	st := &s.devices
	st.mu.Lock()
	defer st.mu.Unlock()
	st.init()
	d := st.byCode[st.byUser[userCodeHash]]
	if d == nil || d.Status != storage.DevicePending || !d.ExpiresAt.After(now) {
		return nil, storage.ErrNotFound
	}
	return copyDevice(d), nil
}

// DecideDeviceAuthorization implements storage.DeviceStore.
func (s *Store) DecideDeviceAuthorization(_ context.Context, userCodeHash, subject string, request []byte, now time.Time) (*storage.DeviceAuthorization, error) {
	st := &s.devices
	st.mu.Lock()
	defer st.mu.Unlock()
	st.init()
	d := st.byCode[st.byUser[userCodeHash]]
	if d == nil || d.Status != storage.DevicePending || !d.ExpiresAt.After(now) {
		return nil, storage.ErrPreconditionFailed
	}
	d.Status = storage.DeviceDenied
	if request != nil {
		d.Status = storage.DeviceApproved
		d.Request = slices.Clone(request)
	}
	d.Subject = subject
	d.DecidedAt = now
	return copyDevice(d), nil
}

// PollDeviceAuthorization implements storage.DeviceStore.
func (s *Store) PollDeviceAuthorization(_ context.Context, deviceCodeHash, clientID string, now time.Time) (*storage.DeviceAuthorization, error) {
	st := &s.devices
	st.mu.Lock()
	defer st.mu.Unlock()
	st.init()
	d := st.byCode[deviceCodeHash]
	if d == nil || d.ClientID != clientID {
		return nil, storage.ErrNotFound
	}
	var out storage.DevicePollOutcome
	switch {
	case !d.ExpiresAt.After(now):
		out = storage.PollExpired
	case d.Status == storage.DeviceDenied:
		out = storage.PollDenied
	case d.Status == storage.DeviceIssued:
		out = storage.PollUsed
	case d.Status == storage.DeviceApproved:
		out = storage.PollIssued
		d.Status = storage.DeviceIssued
	case !d.LastPolledAt.IsZero() && now.Before(d.LastPolledAt.Add(d.Interval-storage.DevicePollLeeway)):
		out = storage.PollSlowDown
		d.Interval += storage.DeviceSlowDownStep
	default:
		out = storage.PollPending
	}
	d.LastOutcome = out
	d.LastPolledAt = now
	return copyDevice(d), nil
}

// ListDeviceAuthorizations implements storage.DeviceStore.
func (s *Store) ListDeviceAuthorizations(_ context.Context, now time.Time, limit int) ([]*storage.DeviceAuthorization, error) {
	st := &s.devices
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []*storage.DeviceAuthorization
	for _, d := range st.byCode {
		if d.ExpiresAt.After(now) {
			out = append(out, copyDevice(d))
		}
	}
	slices.SortFunc(out, func(a, b *storage.DeviceAuthorization) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.DeviceCodeHash, b.DeviceCodeHash)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// deleteExpired removes device authorizations that expired before before.
func (d *deviceState) deleteExpired(before time.Time) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for k, row := range d.byCode {
		if row.ExpiresAt.Before(before) {
			delete(d.byUser, row.UserCodeHash)
			delete(d.byCode, k)
			n++
		}
	}
	return n
}
