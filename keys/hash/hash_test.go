package hash

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/ory/fosite"
)

var (
	_ fosite.Hasher = (*Hasher)(nil)
	_ fosite.Hasher = (*Cached)(nil)
)

// cheap keeps unit tests fast; DefaultParams is exercised where the real
// cost matters (round trip, benchmarks).
var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func mustNew(t testing.TB, p Params) *Hasher {
	t.Helper()
	h, err := New(p)
	if err != nil {
		t.Fatalf("New(%+v): %v", p, err)
	}
	return h
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	d := DefaultParams()
	if d != (Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}) {
		t.Fatalf("DefaultParams = %+v, want the OWASP minimum", d)
	}
	with := func(f func(*Params)) Params { p := d; f(&p); return p }
	for _, tc := range []struct {
		name string
		p    Params
		ok   bool
	}{
		{"case=default", d, true},
		{"case=cheap", cheap, true},
		{"case=max", Params{Memory: MaxMemory, Time: MaxTime, Threads: MaxThreads, SaltLen: MaxSaltLen, KeyLen: MaxKeyLen}, true},
		{"case=zero", Params{}, false},
		{"case=memory-too-big", with(func(p *Params) { p.Memory = MaxMemory + 1 }), false},
		{"case=memory-below-8-per-lane", with(func(p *Params) { p.Threads = 4; p.Memory = 31 }), false},
		{"case=time-zero", with(func(p *Params) { p.Time = 0 }), false},
		{"case=time-too-big", with(func(p *Params) { p.Time = MaxTime + 1 }), false},
		{"case=threads-zero", with(func(p *Params) { p.Threads = 0 }), false},
		{"case=threads-too-many", with(func(p *Params) { p.Threads = MaxThreads + 1 }), false},
		{"case=salt-short", with(func(p *Params) { p.SaltLen = MinSaltLen - 1 }), false},
		{"case=salt-long", with(func(p *Params) { p.SaltLen = MaxSaltLen + 1 }), false},
		{"case=key-short", with(func(p *Params) { p.KeyLen = MinKeyLen - 1 }), false},
		{"case=key-long", with(func(p *Params) { p.KeyLen = MaxKeyLen + 1 }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", tc.p, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidParams) {
				t.Fatalf("err = %v, want ErrInvalidParams", err)
			}
			if tc.ok {
				return
			}
			if _, err := New(tc.p); !errors.Is(err, ErrInvalidParams) {
				t.Fatalf("New err = %v, want ErrInvalidParams", err)
			}
		})
	}
}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashCompareDefaultParams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := mustNew(t, DefaultParams())
	secret := []byte("correct horse battery staple")
	stored, err := h.Hash(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if !phcRE.Match(stored) {
		t.Fatalf("PHC string %q has the wrong shape", stored)
	}
	if strings.Contains(string(stored), string(secret)) {
		t.Fatal("hash contains the secret")
	}
	if err := h.Compare(ctx, stored, secret); err != nil {
		t.Fatalf("Compare(right secret) = %v", err)
	}
	if err := h.Compare(ctx, stored, []byte("correct horse battery stapl")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Compare(wrong secret) = %v, want ErrMismatch", err)
	}
	if h.NeedsRehash(stored) {
		t.Fatal("NeedsRehash = true for a hash made with the hasher's own params")
	}
}

func TestHashCompare(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := mustNew(t, cheap)
	for _, tc := range []struct {
		name          string
		secret, wrong string
	}{
		{"case=ascii", "s3cret", "s3creT"},
		{"case=empty-secret", "", " "},
		{"case=prefix", "abcdef", "abcde"},
		{"case=unicode", "pässwörd", "passwort"},
		{"case=long", strings.Repeat("x", 4096), strings.Repeat("x", 4095) + "y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored, err := h.Hash(ctx, []byte(tc.secret))
			if err != nil {
				t.Fatal(err)
			}
			again, _ := h.Hash(ctx, []byte(tc.secret))
			if string(again) == string(stored) {
				t.Fatal("two hashes of one secret are equal: salt is not random")
			}
			if err := h.Compare(ctx, stored, []byte(tc.secret)); err != nil {
				t.Fatalf("Compare(right) = %v", err)
			}
			if err := h.Compare(ctx, again, []byte(tc.secret)); err != nil {
				t.Fatalf("Compare(right, second hash) = %v", err)
			}
			if err := h.Compare(ctx, stored, []byte(tc.wrong)); !errors.Is(err, ErrMismatch) {
				t.Fatalf("Compare(wrong) = %v, want ErrMismatch", err)
			}
		})
	}
}

// TestKnownAnswer checks interoperability: the vector was produced by the
// reference implementation's CLI (password "password", salt "somesalt",
// argon2id t=2 m=64 p=1, 24-byte output; also in x/crypto's own tests).
func TestKnownAnswer(t *testing.T) {
	t.Parallel()
	raw, _ := hex.DecodeString("068d62b26455936aa6ebe60060b0a65870dbfa3ddf8d41f7")
	stored := "$argon2id$v=19$m=64,t=2,p=1$" + base64.RawStdEncoding.EncodeToString([]byte("somesalt")) +
		"$" + base64.RawStdEncoding.EncodeToString(raw)
	h := mustNew(t, cheap)
	if err := h.Compare(context.Background(), []byte(stored), []byte("password")); err != nil {
		t.Fatalf("Compare(reference vector) = %v", err)
	}
	if err := h.Compare(context.Background(), []byte(stored), []byte("Password")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Compare(reference vector, wrong) = %v, want ErrMismatch", err)
	}
	d, err := decode([]byte(stored))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Params{Memory: 64, Time: 2, Threads: 1, SaltLen: 8, KeyLen: 24}); d.params != want {
		t.Fatalf("decoded params = %+v, want %+v", d.params, want)
	}
	if got := string(encode(d.params, d.salt[:8], d.key[:24])); got != stored {
		t.Fatalf("re-encoded = %q, want %q", got, stored)
	}
}

// Not parallel: testing.AllocsPerRun refuses to run in parallel tests.
func TestInvalidHash(t *testing.T) {
	salt := base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef"))
	key := base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	phc := func(algo, v, params, s, k string) string {
		return "$" + algo + "$" + v + "$" + params + "$" + s + "$" + k
	}
	valid := phc("argon2id", "v=19", "m=64,t=1,p=1", salt, key)
	h := mustNew(t, cheap)
	if _, err := decode([]byte(valid)); err != nil {
		t.Fatalf("control row rejected: %v", err)
	}
	for _, tc := range []struct{ name, hash string }{
		{"case=empty", ""},
		{"case=bcrypt", "$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"},
		{"case=argon2i", phc("argon2i", "v=19", "m=64,t=1,p=1", salt, key)},
		{"case=argon2d", phc("argon2d", "v=19", "m=64,t=1,p=1", salt, key)},
		{"case=version-16", phc("argon2id", "v=16", "m=64,t=1,p=1", salt, key)},
		{"case=no-version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"case=huge-m", phc("argon2id", "v=19", "m=4294967295,t=1,p=1", salt, key)},
		{"case=m-over-1GiB", phc("argon2id", "v=19", "m=1048577,t=1,p=1", salt, key)},
		{"case=m-overflow", phc("argon2id", "v=19", "m=18446744073709551617,t=1,p=1", salt, key)},
		{"case=m-below-8-per-lane", phc("argon2id", "v=19", "m=31,t=1,p=4", salt, key)},
		{"case=m-leading-zero", phc("argon2id", "v=19", "m=064,t=1,p=1", salt, key)},
		{"case=m-negative", phc("argon2id", "v=19", "m=-64,t=1,p=1", salt, key)},
		{"case=m-plus", phc("argon2id", "v=19", "m=+64,t=1,p=1", salt, key)},
		{"case=m-empty", phc("argon2id", "v=19", "m=,t=1,p=1", salt, key)},
		{"case=t-zero", phc("argon2id", "v=19", "m=64,t=0,p=1", salt, key)},
		{"case=t-huge", phc("argon2id", "v=19", "m=64,t=4294967295,p=1", salt, key)},
		{"case=t-17", phc("argon2id", "v=19", "m=64,t=17,p=1", salt, key)},
		{"case=p-zero", phc("argon2id", "v=19", "m=64,t=1,p=0", salt, key)},
		{"case=p-256", phc("argon2id", "v=19", "m=4096,t=1,p=256", salt, key)},
		{"case=p-17", phc("argon2id", "v=19", "m=4096,t=1,p=17", salt, key)},
		{"case=params-reordered", phc("argon2id", "v=19", "t=1,m=64,p=1", salt, key)},
		{"case=params-extra", phc("argon2id", "v=19", "m=64,t=1,p=1,k=1", salt, key)},
		{"case=params-spaces", phc("argon2id", "v=19", "m=64, t=1, p=1", salt, key)},
		{"case=salt-bad-base64", phc("argon2id", "v=19", "m=64,t=1,p=1", "!!!!!!!!!!!!!!!!!!!!!!", key)},
		{"case=salt-padded", phc("argon2id", "v=19", "m=64,t=1,p=1", salt+"==", key)},
		{"case=salt-url-alphabet", phc("argon2id", "v=19", "m=64,t=1,p=1", "_-"+salt[2:], key)},
		{"case=salt-stray-bits", phc("argon2id", "v=19", "m=64,t=1,p=1", salt[:len(salt)-1]+"B", key)},
		{"case=salt-too-short", phc("argon2id", "v=19", "m=64,t=1,p=1", base64.RawStdEncoding.EncodeToString([]byte("1234567")), key)},
		{"case=salt-too-long", phc("argon2id", "v=19", "m=64,t=1,p=1", base64.RawStdEncoding.EncodeToString(make([]byte, 65)), key)},
		{"case=salt-empty", phc("argon2id", "v=19", "m=64,t=1,p=1", "", key)},
		{"case=key-bad-base64", phc("argon2id", "v=19", "m=64,t=1,p=1", salt, "*"+key[1:])},
		{"case=key-too-short", phc("argon2id", "v=19", "m=64,t=1,p=1", salt, base64.RawStdEncoding.EncodeToString(make([]byte, 15)))},
		{"case=key-too-long", phc("argon2id", "v=19", "m=64,t=1,p=1", salt, base64.RawStdEncoding.EncodeToString(make([]byte, 65)))},
		{"case=key-missing", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"case=trailing-dollar", valid + "$"},
		{"case=trailing-space", valid + " "},
		{"case=leading-space", " " + valid},
		{"case=huge-input", valid + strings.Repeat("A", 1<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored := []byte(tc.hash)
			ctx := context.Background()
			if err := h.Compare(ctx, stored, []byte("secret")); !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("Compare = %v, want ErrInvalidHash", err)
			}
			if !h.NeedsRehash(stored) {
				t.Fatal("NeedsRehash = false for an invalid hash")
			}
			// Rejection happens before any Argon2id work or allocation.
			if n := testing.AllocsPerRun(20, func() { _ = h.Compare(ctx, stored, []byte("secret")) }); n != 0 {
				t.Fatalf("rejecting allocated %v times per run, want 0", n)
			}
		})
	}
}

func TestInvalidHashErrorLeaksNothing(t *testing.T) {
	t.Parallel()
	h := mustNew(t, cheap)
	stored := "$argon2id$v=19$m=64,t=1,p=1$c2VjcmV0LXNhbHQtdmFsdWU$Zm9v"
	err := h.Compare(context.Background(), []byte(stored), []byte("presented-secret"))
	if !errors.Is(err, ErrInvalidHash) {
		t.Fatalf("err = %v", err)
	}
	for _, s := range []string{"presented-secret", "c2VjcmV0", "Zm9v"} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error %q contains %q", err, s)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := mustNew(t, cheap)
	stored, err := h.Hash(ctx, []byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	if h.NeedsRehash(stored) {
		t.Fatal("NeedsRehash = true for own params")
	}
	for _, tc := range []struct {
		name string
		p    Params
	}{
		{"case=memory", Params{Memory: 128, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"case=time", Params{Memory: 64, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}},
		{"case=threads", Params{Memory: 64, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}},
		{"case=salt", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 32, KeyLen: 32}},
		{"case=key", Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 16}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h2 := mustNew(t, tc.p)
			if !h2.NeedsRehash(stored) {
				t.Fatal("NeedsRehash = false after a parameter change")
			}
			// The old hash still verifies, so the caller can rehash.
			if err := h2.Compare(ctx, stored, []byte("s")); err != nil {
				t.Fatalf("Compare with new params = %v", err)
			}
			rehashed, err := h2.Hash(ctx, []byte("s"))
			if err != nil {
				t.Fatal(err)
			}
			if h2.NeedsRehash(rehashed) {
				t.Fatal("NeedsRehash = true after rehashing")
			}
		})
	}
}

func TestDummyCompare(t *testing.T) {
	t.Parallel()
	h := mustNew(t, cheap)
	// The dummy target is a real hash with the hasher's current parameters,
	// so DummyCompare does exactly the work of a wrong-secret Compare.
	if h.NeedsRehash(h.dummy) {
		t.Fatal("dummy hash does not use the hasher's parameters")
	}
	if err := h.Compare(context.Background(), h.dummy, []byte("guess")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Compare(dummy) = %v, want ErrMismatch", err)
	}
	h.DummyCompare(context.Background(), []byte("guess"))
	other := mustNew(t, cheap)
	if string(other.dummy) == string(h.dummy) {
		t.Fatal("two hashers share a dummy hash")
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	h := mustNew(t, cheap)
	stored, _ := h.Hash(context.Background(), []byte("s"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Compare(ctx, stored, []byte("s")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Compare = %v, want context.Canceled", err)
	}
	if _, err := h.Hash(ctx, []byte("s")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash = %v, want context.Canceled", err)
	}
}
