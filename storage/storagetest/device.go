package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// newDevice returns a pending device authorization of client "c1" with
// codes derived from name, created at at and valid for ten minutes.
func newDevice(name string, at time.Time) *storage.DeviceAuthorization {
	return &storage.DeviceAuthorization{
		DeviceCodeHash: storage.HashKey("device-" + name),
		UserCodeHash:   storage.HashKey("user-" + name),
		UserCodeHint:   "BCDF",
		ClientID:       "c1",
		RequestID:      "req-" + name,
		Scopes:         []string{"openid", "offline_access"},
		Interval:       5 * time.Second,
		CreatedAt:      at,
		ExpiresAt:      at.Add(10 * time.Minute),
	}
}

// deviceTests pin the device authorization grant's transitions (RFC 8628):
// one decision per request, one issuing poll per approval, slow_down
// stored with the row.
var deviceTests = []test{
	{"DeviceCreateAndLookUp", func(t *testing.T, s storage.Store) {
		at := now()
		d := newDevice("a", at)
		must(t, s.CreateDeviceAuthorization(ctx(t), d))
		got, err := s.DeviceAuthorizationByUserCode(ctx(t), d.UserCodeHash, at)
		must(t, err)
		if got.Status != storage.DevicePending || got.ClientID != "c1" || got.RequestID != "req-a" ||
			got.Interval != 5*time.Second || !got.ExpiresAt.Equal(d.ExpiresAt) || !got.CreatedAt.Equal(at) ||
			len(got.Scopes) != 2 || got.UserCodeHint != "BCDF" {
			t.Fatalf("looked up %+v", got)
		}
		// Taken codes conflict: the caller draws new ones.
		dup := newDevice("b", at)
		dup.UserCodeHash = d.UserCodeHash
		wantErr(t, s.CreateDeviceAuthorization(ctx(t), dup), storage.ErrConflict)
		dup = newDevice("b", at)
		dup.DeviceCodeHash = d.DeviceCodeHash
		wantErr(t, s.CreateDeviceAuthorization(ctx(t), dup), storage.ErrConflict)
		// Unknown and expired codes look the same.
		_, err = s.DeviceAuthorizationByUserCode(ctx(t), storage.HashKey("nope"), at)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.DeviceAuthorizationByUserCode(ctx(t), d.UserCodeHash, d.ExpiresAt)
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"DeviceDecideOnce", func(t *testing.T, s storage.Store) {
		at := now()
		d := newDevice("a", at)
		must(t, s.CreateDeviceAuthorization(ctx(t), d))
		got, err := s.DecideDeviceAuthorization(ctx(t), d.UserCodeHash, "alice", []byte(`{"id":"req-a"}`), at)
		must(t, err)
		if got.Status != storage.DeviceApproved || got.Subject != "alice" || !got.DecidedAt.Equal(at) {
			t.Fatalf("approved: %+v", got)
		}
		// A decided request is no longer pending: neither found nor decided again.
		_, err = s.DeviceAuthorizationByUserCode(ctx(t), d.UserCodeHash, at)
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.DecideDeviceAuthorization(ctx(t), d.UserCodeHash, "mallory", nil, at)
		wantErr(t, err, storage.ErrPreconditionFailed)
		// Expired and unknown requests cannot be decided.
		e := newDevice("e", at)
		must(t, s.CreateDeviceAuthorization(ctx(t), e))
		_, err = s.DecideDeviceAuthorization(ctx(t), e.UserCodeHash, "alice", []byte(`{}`), e.ExpiresAt)
		wantErr(t, err, storage.ErrPreconditionFailed)
		_, err = s.DecideDeviceAuthorization(ctx(t), storage.HashKey("nope"), "alice", nil, at)
		wantErr(t, err, storage.ErrPreconditionFailed)
	}},
	{"DeviceApproveRacingDenyHasOneOutcome", func(t *testing.T, s storage.Store) {
		at := now()
		d := newDevice("a", at)
		must(t, s.CreateDeviceAuthorization(ctx(t), d))
		errs := Together(20, func(i int) error {
			var req []byte
			if i%2 == 0 {
				req = []byte(`{"id":"req-a"}`)
			}
			_, err := s.DecideDeviceAuthorization(ctx(t), d.UserCodeHash, "alice", req, at)
			return err
		})
		if n := Count(errs, func(err error) bool { return err == nil }); n != 1 {
			t.Fatalf("%d decisions won, want exactly 1: %v", n, errs)
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
				t.Fatalf("a losing decision failed with %v", err)
			}
		}
	}},
	{"DevicePollOutcomes", func(t *testing.T, s storage.Store) {
		at := now()
		d := newDevice("a", at)
		must(t, s.CreateDeviceAuthorization(ctx(t), d))
		poll := func(when time.Time, want storage.DevicePollOutcome, interval time.Duration) {
			t.Helper()
			got, err := s.PollDeviceAuthorization(ctx(t), d.DeviceCodeHash, "c1", when)
			must(t, err)
			if got.LastOutcome != want || got.Interval != interval || !got.LastPolledAt.Equal(when) {
				t.Fatalf("poll at +%s: outcome %q interval %s polled %v; want %q, %s", when.Sub(at), got.LastOutcome, got.Interval, got.LastPolledAt, want, interval)
			}
		}
		poll(at, storage.PollPending, 5*time.Second)
		poll(at.Add(5*time.Second), storage.PollPending, 5*time.Second)
		// Faster than the interval (less the leeway): slow_down, and the
		// interval grows by 5 s each time, measured from the latest poll.
		poll(at.Add(6*time.Second), storage.PollSlowDown, 10*time.Second)
		poll(at.Add(14*time.Second), storage.PollSlowDown, 15*time.Second)
		// Within the leeway of the interval is not too fast.
		poll(at.Add(28*time.Second), storage.PollPending, 15*time.Second)
		// Another client's poll, or an unknown code, finds nothing.
		_, err := s.PollDeviceAuthorization(ctx(t), d.DeviceCodeHash, "c2", at.Add(time.Minute))
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.PollDeviceAuthorization(ctx(t), storage.HashKey("nope"), "c1", at.Add(time.Minute))
		wantErr(t, err, storage.ErrNotFound)
		// Approved: the next poll issues, whatever its timing; later ones
		// find it used.
		_, err = s.DecideDeviceAuthorization(ctx(t), d.UserCodeHash, "alice", []byte(`{"id":"req-a"}`), at.Add(29*time.Second))
		must(t, err)
		got, err := s.PollDeviceAuthorization(ctx(t), d.DeviceCodeHash, "c1", at.Add(30*time.Second))
		must(t, err)
		if got.LastOutcome != storage.PollIssued || got.Status != storage.DeviceIssued || got.Subject != "alice" || string(got.Request) == "" {
			t.Fatalf("issuing poll: %+v", got)
		}
		poll(at.Add(time.Minute), storage.PollUsed, 15*time.Second)
		// Expiry wins over everything.
		poll(d.ExpiresAt, storage.PollExpired, 15*time.Second)

		den := newDevice("d", at)
		must(t, s.CreateDeviceAuthorization(ctx(t), den))
		_, err = s.DecideDeviceAuthorization(ctx(t), den.UserCodeHash, "alice", nil, at)
		must(t, err)
		got, err = s.PollDeviceAuthorization(ctx(t), den.DeviceCodeHash, "c1", at)
		must(t, err)
		if got.LastOutcome != storage.PollDenied || got.Request != nil {
			t.Fatalf("denied poll: %+v", got)
		}
	}},
	{"DeviceConcurrentPollsIssueOnce", func(t *testing.T, s storage.Store) {
		at := now()
		d := newDevice("a", at)
		must(t, s.CreateDeviceAuthorization(ctx(t), d))
		_, err := s.DecideDeviceAuthorization(ctx(t), d.UserCodeHash, "alice", []byte(`{"id":"req-a"}`), at)
		must(t, err)
		outs := Together(20, func(int) storage.DevicePollOutcome {
			got, err := s.PollDeviceAuthorization(ctx(t), d.DeviceCodeHash, "c1", at.Add(time.Second))
			if err != nil {
				return storage.DevicePollOutcome("error: " + err.Error())
			}
			return got.LastOutcome
		})
		if n := Count(outs, func(o storage.DevicePollOutcome) bool { return o == storage.PollIssued }); n != 1 {
			t.Fatalf("%d polls issued, want exactly 1: %v", n, outs)
		}
		if n := Count(outs, func(o storage.DevicePollOutcome) bool { return o == storage.PollUsed }); n != 19 {
			t.Fatalf("%d polls found it used, want 19: %v", n, outs)
		}
	}},
	{"DeviceListAndExpire", func(t *testing.T, s storage.Store) {
		at := now()
		old := newDevice("old", at.Add(-20*time.Minute))
		a, b := newDevice("a", at), newDevice("b", at.Add(time.Second))
		for _, d := range []*storage.DeviceAuthorization{old, a, b} {
			must(t, s.CreateDeviceAuthorization(ctx(t), d))
		}
		list, err := s.ListDeviceAuthorizations(ctx(t), at.Add(2*time.Second), 0)
		must(t, err)
		if len(list) != 2 || list[0].RequestID != "req-b" || list[1].RequestID != "req-a" {
			t.Fatalf("list: %+v", list)
		}
		if list, _ := s.ListDeviceAuthorizations(ctx(t), at.Add(2*time.Second), 1); len(list) != 1 {
			t.Fatalf("limit 1 listed %d", len(list))
		}
		// The janitor removes the expired one only; its user code is free again.
		n, err := s.DeleteExpired(ctx(t), at, 100)
		must(t, err)
		if n < 1 {
			t.Fatalf("janitor removed %d rows", n)
		}
		_, err = s.PollDeviceAuthorization(ctx(t), old.DeviceCodeHash, "c1", at)
		wantErr(t, err, storage.ErrNotFound)
		again := newDevice("old", at)
		must(t, s.CreateDeviceAuthorization(ctx(t), again))
		if _, err := s.PollDeviceAuthorization(ctx(t), a.DeviceCodeHash, "c1", at); err != nil {
			t.Fatalf("unexpired row removed: %v", err)
		}
	}},
}
