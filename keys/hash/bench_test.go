package hash

import (
	"context"
	"testing"
)

// The three benchmarks run at DefaultParams; compare the ns/op of
// CompareUncached and CompareCached: that ratio is what the cache buys.

func BenchmarkCompareUncached(b *testing.B) {
	ctx := context.Background()
	h := mustNew(b, DefaultParams())
	stored, _ := h.Hash(ctx, []byte("client-secret"))
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Compare(ctx, stored, []byte("client-secret")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompareCached(b *testing.B) {
	ctx := context.Background()
	c := NewCached(mustNew(b, DefaultParams()), CacheConfig{})
	stored, _ := c.Hash(ctx, []byte("client-secret"))
	if err := c.Compare(ctx, stored, []byte("client-secret")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Compare(ctx, stored, []byte("client-secret")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompareCachedParallel(b *testing.B) {
	ctx := context.Background()
	c := NewCached(mustNew(b, DefaultParams()), CacheConfig{})
	stored, _ := c.Hash(ctx, []byte("client-secret"))
	if err := c.Compare(ctx, stored, []byte("client-secret")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Compare(ctx, stored, []byte("client-secret")); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkDummyCompare(b *testing.B) {
	ctx := context.Background()
	h := mustNew(b, DefaultParams())
	b.ReportAllocs()
	for b.Loop() {
		h.DummyCompare(ctx, []byte("client-secret"))
	}
}
