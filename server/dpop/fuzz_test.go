package dpop_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/server/dpop/dpoptest"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

// FuzzVerify: whatever bytes arrive in the DPoP header, Verify returns a
// proof or a refusal (never a store error: the store works), and never
// panics. The seeds are a valid proof and broken variants.
func FuzzVerify(f *testing.F) {
	c := dpoptest.NewES256(f)
	f.Add(c.Proof(f, "POST", tokenURL))
	f.Add(c.Proof(f, "POST", tokenURL, dpoptest.WithClaim("iat", "x")))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("....")
	f.Add(`{"protected":"e30","payload":"e30","signature":""}`)
	v, err := dpop.New(dpop.Config{Store: memory.New(memory.Config{}), NonceKeys: [][]byte{nonceKey}, Nonce: dpop.NonceNever})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		p, err := v.Verify(context.Background(), []string{header}, dpop.Check{Method: "POST", URL: tokenURL, AccessToken: "tok"})
		if err != nil {
			if _, refused := dpop.AsError(err); !refused {
				t.Fatalf("not a refusal: %v", err)
			}
			return
		}
		if p.JKT == "" || p.IssuedAt.After(time.Now().Add(time.Hour)) {
			t.Fatalf("accepted proof %+v", p)
		}
	})
}
