package apikeys

import (
	"context"
	"testing"

	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

// BenchmarkVerify measures Verify on the memory store at the production
// Argon2id parameters: uncached (every call runs Argon2id) against cached
// (the steady state of a machine caller).
func BenchmarkVerify(b *testing.B) {
	c := newClock()
	f := newService(b, memory.New(memory.Config{Now: c.Now}), c, newBox(b), hash.DefaultParams())
	tok, _ := f.create(b, nil)
	ctx := context.Background()
	b.Run("case=uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f.cached.Purge()
			if _, _, err := f.svc.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("case=cached", func(b *testing.B) {
		if _, _, err := f.svc.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := f.svc.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("case=malformed", func(b *testing.B) {
		bad := tok[:len(tok)-1] + "!"
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := f.svc.Verify(ctx, bad); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}
