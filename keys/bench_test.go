package keys_test

import (
	"context"
	"testing"

	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/keys"
)

func benchRing(b *testing.B, algs ...string) *keys.Ring {
	b.Helper()
	e := newEnv()
	r := e.ring(b, e.config(b, algs...))
	if err := r.Bootstrap(context.Background()); err != nil {
		b.Fatal(err)
	}
	return r
}

func BenchmarkSignerGenerate(b *testing.B) {
	r := benchRing(b, keys.ES256, keys.RS256, keys.EdDSA)
	ctx := context.Background()
	for _, alg := range r.Algorithms() {
		b.Run(alg, func(b *testing.B) {
			s := r.Signer(alg)
			claims := jwt.MapClaims{"sub": "svc", "scp": []string{"read"}, "client_id": "c1"}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.Generate(ctx, claims, &jwt.Headers{Extra: map[string]any{"typ": "at+jwt"}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSignerValidate(b *testing.B) {
	r := benchRing(b, keys.ES256, keys.RS256, keys.EdDSA)
	ctx := context.Background()
	for _, alg := range r.Algorithms() {
		b.Run(alg, func(b *testing.B) {
			s := r.Signer(alg)
			tok, _, err := s.Generate(ctx, jwt.MapClaims{"sub": "svc"}, jwt.NewHeaders())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Validate(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJWKS(b *testing.B) {
	r := benchRing(b, keys.ES256, keys.RS256)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if body, etag := r.JWKS(); len(body) == 0 || etag == "" {
				b.Fatal("empty JWKS")
			}
		}
	})
}
