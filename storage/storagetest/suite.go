package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// test is one conformance case; it gets a fresh store.
type test struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}

// Run runs the conformance suite. newStore must return an empty store and
// release it when t ends (t.Cleanup); it is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	var all []test
	all = append(all, clientTests...)
	all = append(all, oauth2Tests...)
	all = append(all, singleUseTests...)
	all = append(all, txTests...)
	all = append(all, revokerTests...)
	all = append(all, containmentTests...)
	all = append(all, tokenAuditTests...)
	all = append(all, domainTests...)
	all = append(all, accountTests...)
	all = append(all, ownerDisabledTests...)
	all = append(all, opsTests...)
	all = append(all, assignedTests...)
	all = append(all, guardTests...)
	all = append(all, dpopTests...)
	all = append(all, announceTests...)
	all = append(all, deviceTests...)
	all = append(all, mintLockTests...)
	all = append(all, registrationTests...)
	all = append(all, backchannelTests...)
	all = append(all, flowTests...)
	for _, tc := range all {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// now is the reference time of a test, at the precision Postgres keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func ctx(t *testing.T) context.Context { return t.Context() }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("want error %v, got %v", target, err)
	}
}

func wantEqual(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := diff(want, got); d != "" {
		t.Fatalf("%s differs: %s", what, d)
	}
}
