package clientcache_test

import (
	"testing"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/clientcache"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// BenchmarkGetClient compares fosite's per-request client lookup on
// Postgres with and without the cache (run in parallel, as the token
// endpoint does).
func BenchmarkGetClient(b *testing.B) {
	pg := pgtest.NewStore(b)
	if err := pg.CreateClient(b.Context(), newClient("app")); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name  string
		store storage.Store
	}{
		{"store=postgres", pg},
		{"store=clientcache+postgres", clientcache.New(pg, clientcache.Config{})},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := tc.store.GetClient(b.Context(), "app"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
