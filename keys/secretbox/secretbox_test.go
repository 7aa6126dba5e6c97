package secretbox

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func secret(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func mustNew(t *testing.T, secrets ...[]byte) *Box {
	t.Helper()
	b, err := New(secrets)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := mustNew(t, secret('a', 32))
	for _, tc := range []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"case=empty", nil, nil},
		{"case=short", []byte("x"), []byte("kid-1")},
		{"case=key-sized", bytes.Repeat([]byte{0xAB}, 121), []byte("kid-2")},
		{"case=large", bytes.Repeat([]byte("private key "), 1000), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := b.Seal(tc.plaintext, tc.aad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if got, want := len(sealed), len(tc.plaintext)+overhead; got != want {
				t.Errorf("sealed length = %d, want %d", got, want)
			}
			// A short plaintext can occur in random bytes by chance (a
			// 1-byte one in about one blob in seven); only a longer one
			// showing up means it was not encrypted.
			if len(tc.plaintext) >= 8 && bytes.Contains(sealed, tc.plaintext) {
				t.Error("sealed blob contains the plaintext")
			}
			got, err := b.Open(sealed, tc.aad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Errorf("Open = %q, want %q", got, tc.plaintext)
			}
		})
	}
}

func TestSealIsRandomised(t *testing.T) {
	t.Parallel()
	b := mustNew(t, secret('a', 32))
	s1, _ := b.Seal([]byte("same"), nil)
	s2, _ := b.Seal([]byte("same"), nil)
	if bytes.Equal(s1, s2) {
		t.Fatal("two seals of the same plaintext are identical: nonce not random")
	}
}

func TestAADBinding(t *testing.T) {
	t.Parallel()
	b := mustNew(t, secret('a', 32))
	sealed, err := b.Seal([]byte("private"), []byte("kid-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, aad := range [][]byte{nil, []byte("kid-2"), []byte("kid-1 "), []byte("kid-")} {
		if _, err := b.Open(sealed, aad); !errors.Is(err, ErrOpen) {
			t.Errorf("Open with aad %q: err = %v, want ErrOpen", aad, err)
		}
	}
}

func TestTamperEveryByte(t *testing.T) {
	t.Parallel()
	b := mustNew(t, secret('a', 32))
	aad := []byte("kid")
	sealed, err := b.Seal([]byte("a private signing key"), aad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		for _, flip := range []byte{0x01, 0x80, 0xFF} {
			bad := bytes.Clone(sealed)
			bad[i] ^= flip
			if _, err := b.Open(bad, aad); !errors.Is(err, ErrOpen) {
				t.Fatalf("byte %d ^ %#x: err = %v, want ErrOpen", i, flip, err)
			}
		}
	}
	for n := range len(sealed) {
		if _, err := b.Open(sealed[:n], aad); !errors.Is(err, ErrOpen) {
			t.Fatalf("truncated to %d: err = %v, want ErrOpen", n, err)
		}
	}
	if _, err := b.Open(append(bytes.Clone(sealed), 0), aad); !errors.Is(err, ErrOpen) {
		t.Fatalf("extended: err = %v, want ErrOpen", err)
	}
}

func TestUnknownSecret(t *testing.T) {
	t.Parallel()
	sealed, err := mustNew(t, secret('a', 32)).Seal([]byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	other := mustNew(t, secret('b', 32))
	if _, err := other.Open(sealed, nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("err = %v, want ErrOpen", err)
	}
	if !other.NeedsReseal(sealed) {
		t.Error("NeedsReseal = false for a blob sealed by an unknown secret")
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	oldS, newS := secret('o', 40), secret('n', 32)
	aad := []byte("kid-7")
	sealed, err := mustNew(t, oldS).Seal([]byte("payload"), aad)
	if err != nil {
		t.Fatal(err)
	}

	rotated := mustNew(t, newS, oldS)
	if !rotated.NeedsReseal(sealed) {
		t.Fatal("NeedsReseal = false for a blob sealed by the old secret")
	}
	got, err := rotated.Open(sealed, aad)
	if err != nil || string(got) != "payload" {
		t.Fatalf("Open after rotation = %q, %v", got, err)
	}

	resealed, err := rotated.Reseal(sealed, aad)
	if err != nil {
		t.Fatalf("Reseal: %v", err)
	}
	if rotated.NeedsReseal(resealed) {
		t.Fatal("NeedsReseal = true after Reseal")
	}
	if _, err := rotated.Reseal(sealed, []byte("other")); !errors.Is(err, ErrOpen) {
		t.Fatalf("Reseal with wrong aad: err = %v, want ErrOpen", err)
	}

	// Once the old secret is dropped, only the resealed blob opens.
	newOnly := mustNew(t, newS)
	if got, err := newOnly.Open(resealed, aad); err != nil || string(got) != "payload" {
		t.Fatalf("Open resealed with new secret only = %q, %v", got, err)
	}
	if _, err := newOnly.Open(sealed, aad); !errors.Is(err, ErrOpen) {
		t.Fatalf("old blob with old secret dropped: err = %v, want ErrOpen", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		secrets [][]byte
		wantErr string // substring; empty means success
	}{
		{"case=one", [][]byte{secret('a', 32)}, ""},
		{"case=two", [][]byte{secret('a', 32), secret('b', 64)}, ""},
		{"case=none", nil, "no master secret"},
		{"case=short-first", [][]byte{secret('a', 31)}, "secret 0 is 31 bytes"},
		{"case=short-second", [][]byte{secret('a', 32), secret('b', 16)}, "secret 1 is 16 bytes"},
		{"case=empty-second", [][]byte{secret('a', 32), {}}, "secret 1 is 0 bytes"},
		{"case=duplicate", [][]byte{secret('a', 32), secret('b', 32), secret('a', 32)}, "secret 2 duplicates secret 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.secrets)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New err = %v, want containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestErrorNeverContainsData(t *testing.T) {
	t.Parallel()
	_, err := New([][]byte{[]byte("short-but-secret")})
	if err == nil || strings.Contains(err.Error(), "short-but-secret") {
		t.Fatalf("error %v leaks the secret", err)
	}
	b := mustNew(t, secret('a', 32))
	_, err = b.Open([]byte("some-sealed-data-that-is-long-enough-to-parse"), []byte("aad-value"))
	if err.Error() != ErrOpen.Error() || strings.Contains(err.Error(), "aad-value") {
		t.Fatalf("Open error %q carries data", err)
	}
}

func BenchmarkSeal(b *testing.B) {
	box, _ := New([][]byte{secret('a', 32)})
	pt := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := box.Seal(pt, []byte("kid")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	box, _ := New([][]byte{secret('a', 32)})
	sealed, _ := box.Seal(make([]byte, 128), []byte("kid"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := box.Open(sealed, []byte("kid")); err != nil {
			b.Fatal(err)
		}
	}
}
