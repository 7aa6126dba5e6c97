package regtoken

import (
	"bytes"
	"strings"
	"testing"
)

func pepper(b byte) []byte { return bytes.Repeat([]byte{b}, MinPepperBytes) }

func TestNewAndLookup(t *testing.T) {
	t.Parallel()
	h, err := NewHasher(pepper(1))
	if err != nil {
		t.Fatal(err)
	}
	tok, hash, err := h.New(InitialPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, InitialPrefix) || !WellFormed(InitialPrefix, tok) {
		t.Fatalf("token %q is not well formed", tok)
	}
	if WellFormed(RegistrationPrefix, tok) {
		t.Fatal("an initial token passes as a registration token")
	}
	got := h.Lookup(InitialPrefix, tok)
	if len(got) != 1 || !bytes.Equal(got[0], hash) {
		t.Fatalf("lookup hashes %x, want [%x]", got, hash)
	}
	other, _, _ := h.New(InitialPrefix)
	if other == tok {
		t.Fatal("two tokens are equal")
	}
}

// TestLookupAcrossPepperRotation: a token hashed under the old master
// secret is still found once a new secret is put first.
func TestLookupAcrossPepperRotation(t *testing.T) {
	t.Parallel()
	old, _ := NewHasher(pepper(1))
	tok, hash, _ := old.New(RegistrationPrefix)
	rotated, _ := NewHasher(pepper(2), pepper(1))
	got := rotated.Lookup(RegistrationPrefix, tok)
	if len(got) != 2 || bytes.Equal(got[0], hash) || !bytes.Equal(got[1], hash) {
		t.Fatalf("rotated lookup %x does not end with the old hash %x", got, hash)
	}
	other, _ := NewHasher(pepper(3))
	if bytes.Equal(other.Lookup(RegistrationPrefix, tok)[0], hash) {
		t.Fatal("a different pepper gives the same hash")
	}
}

func TestMalformedTokensNeverLookedUp(t *testing.T) {
	t.Parallel()
	h, _ := NewHasher(pepper(1))
	tok, _, _ := h.New(InitialPrefix)
	for _, bad := range []string{"", InitialPrefix, tok + "A", tok[:len(tok)-1], strings.Replace(tok, "_", "-", 1),
		InitialPrefix + strings.Repeat("!", encodedLen), InitialPrefix + strings.Repeat("\x00", encodedLen)} {
		if h.Lookup(InitialPrefix, bad) != nil {
			t.Fatalf("Lookup(%q) returned hashes", bad)
		}
	}
}

func TestNewHasherRefusesShortPeppers(t *testing.T) {
	t.Parallel()
	if _, err := NewHasher(); err == nil {
		t.Fatal("no pepper accepted")
	}
	if _, err := NewHasher(pepper(1), []byte("short")); err == nil {
		t.Fatal("short pepper accepted")
	}
}
