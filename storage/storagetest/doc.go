// Package storagetest is the one conformance suite of the storage contract.
// Every backend runs it in three lines:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { return newStore(t) })
//	}
//
// It checks the semantics fosite relies on (invalidated codes and inactive
// refresh tokens come back with their sentinel errors, revocation hits the
// whole request id, unknown keys are fosite.ErrNotFound, a disabled client
// is unknown to GetClient, rotating an inactive refresh token is a lost race
// reported as fosite.ErrSerializationFailure) as well as the domain stores:
// deletes that take dependent records along, containment that also
// invalidates pending codes, the shared fallback row lifetimes
// (storage.FallbackLifetime) and the fields a store assigns and writes back. Timestamps it writes are UTC and truncated to microseconds
// (Postgres precision), and expiry cases use times hours away from
// time.Now(), so the suite works whatever clock a backend uses.
package storagetest
