package postgres_test

import (
	"strconv"
	"testing"

	"github.com/bulwark-auth/bulwark/storage"
)

// BenchmarkCreateAccessTokenSession measures the token endpoint's one
// INSERT (client_credentials hot path), request encoding included.
func BenchmarkCreateAccessTokenSession(b *testing.B) {
	s := storeWithClient(b)
	ctx := ctxT(b)
	r := newRequest("bench", "")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.CreateAccessTokenSession(ctx, "sig-"+strconv.Itoa(i), r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetAccessTokenSession measures the introspection lookup: one
// indexed SELECT joined with the client, plus decoding.
func BenchmarkGetAccessTokenSession(b *testing.B) {
	s := storeWithClient(b)
	ctx := ctxT(b)
	const n = 1000
	for i := range n {
		if err := s.CreateAccessTokenSession(ctx, "sig-"+strconv.Itoa(i), newRequest("r"+strconv.Itoa(i), "alice")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.GetAccessTokenSession(ctx, "sig-"+strconv.Itoa(i%n), storage.NewSession("")); err != nil {
			b.Fatal(err)
		}
	}
}
