package apikey

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"regexp"
	"strings"
	"testing"
)

var scannerRE = regexp.MustCompile(`\bbwk_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}\b`)

func mustGenerate(t testing.TB) Key {
	t.Helper()
	k, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		k := mustGenerate(t)
		if len(k.ID) != IDLen || len(k.Secret) != SecretLen {
			t.Fatalf("lengths id=%d secret=%d", len(k.ID), len(k.Secret))
		}
		tok := k.String()
		if len(tok) != TokenLen || TokenLen != 66 {
			t.Fatalf("token length %d, want 66", len(tok))
		}
		if !scannerRE.MatchString(tok) || scannerRE.FindString(tok) != tok {
			t.Fatalf("documented scanner regexp does not match %q", tok)
		}
		got, err := Parse(tok)
		if err != nil {
			t.Fatalf("Parse(own token) = %v", err)
		}
		if got != k {
			t.Fatalf("Parse = %#v, want %#v", got, k)
		}
		if seen[k.ID] || seen[k.Secret] {
			t.Fatal("repeated id or secret")
		}
		seen[k.ID], seen[k.Secret] = true, true
	}
}

// TestChecksumDefinition recomputes the checksum independently of the
// package's encoder, pinning the documented format.
func TestChecksumDefinition(t *testing.T) {
	t.Parallel()
	k := Key{ID: "000000000000", Secret: strings.Repeat("a", SecretLen)}
	tok := k.String()
	body := tok[:len(tok)-ChecksumLen]
	if body != "bwk_000000000000_"+strings.Repeat("a", 43) {
		t.Fatalf("body = %q", body)
	}
	v := uint64(0)
	for _, c := range tok[len(body):] {
		v = v*62 + uint64(strings.IndexRune(alphabet, c))
	}
	if want := uint64(crc32.ChecksumIEEE([]byte(body))); v != want {
		t.Fatalf("checksum decodes to %d, want CRC-32 %d", v, want)
	}
}

func TestGenerateDeterministicReader(t *testing.T) {
	t.Parallel()
	// First read: bytes 0..61 map straight to the alphabet, 62..247 wrap
	// modulo 62, 248..255 are discarded. The rest of the first buffer is
	// discarded too, so the key must be completed from a second read.
	src := []byte{248, 255, 0, 1, 2, 61, 62, 123, 247}
	src = append(src, bytes.Repeat([]byte{250}, 64-len(src))...)
	src = append(src, bytes.Repeat([]byte{35}, 64)...)
	k, err := Generate(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if want := "012z0zzZZZZZ"; k.ID != want {
		t.Fatalf("ID = %q, want %q", k.ID, want)
	}
	if want := strings.Repeat("Z", SecretLen); k.Secret != want {
		t.Fatalf("Secret = %q, want %q", k.Secret, want)
	}
}

func TestGenerateReaderFailure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		r    io.Reader
	}{
		{"case=empty", bytes.NewReader(nil)},
		{"case=short", bytes.NewReader(make([]byte, 30))},
		{"case=all-rejected", bytes.NewReader(bytes.Repeat([]byte{0xFF}, 1<<16))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Generate(tc.r); !errors.Is(err, ErrRandom) {
				t.Fatalf("err = %v, want ErrRandom", err)
			}
		})
	}
}

// TestGenerateUniform is a coarse chi-squared check that rejection
// sampling gives every character the same chance (modulo bias would give
// the first 8 characters 5/4 of the others' weight).
func TestGenerateUniform(t *testing.T) {
	t.Parallel()
	var counts [62]int
	total := 0
	for range 4000 {
		k := mustGenerate(t)
		for _, c := range []byte(k.ID + k.Secret) {
			counts[strings.IndexByte(alphabet, c)]++
			total++
		}
	}
	exp := float64(total) / 62
	chi2 := 0.0
	for _, n := range counts {
		d := float64(n) - exp
		chi2 += d * d / exp
	}
	// 61 degrees of freedom: p = 1e-6 at about 130. Modulo bias at this
	// sample size gives several thousand.
	if chi2 > 130 {
		t.Fatalf("chi-squared %.1f: characters are not uniform (%v)", chi2, counts)
	}
}

func TestEverySubstitutionRejected(t *testing.T) {
	t.Parallel()
	for range 3 {
		tok := mustGenerate(t).String()
		for i := range len(tok) {
			for _, c := range []byte(alphabet + "_") {
				if c == tok[i] {
					continue
				}
				bad := tok[:i] + string(c) + tok[i+1:]
				if _, err := Parse(bad); err == nil {
					t.Fatalf("substitution %q at %d accepted", c, i)
				} else if i >= idStart && i != sepAt && c != '_' && !errors.Is(err, ErrChecksum) {
					t.Fatalf("substitution %q at %d: err = %v, want ErrChecksum", c, i, err)
				}
			}
		}
	}
}

func TestTransposition(t *testing.T) {
	t.Parallel()
	tok := mustGenerate(t).String()
	for i := idStart; i+1 < len(tok); i++ {
		if tok[i] == tok[i+1] {
			continue
		}
		b := []byte(tok)
		b[i], b[i+1] = b[i+1], b[i]
		if _, err := Parse(string(b)); err == nil {
			t.Fatalf("swap at %d accepted", i)
		}
	}
}

func TestTruncationRejected(t *testing.T) {
	t.Parallel()
	tok := mustGenerate(t).String()
	for n := range len(tok) {
		if _, err := Parse(tok[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix of length %d: err = %v, want ErrMalformed", n, err)
		}
		if _, err := Parse(tok[len(tok)-n:]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("suffix of length %d: err = %v, want ErrMalformed", n, err)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	good := mustGenerate(t).String()
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"case=empty", "", ErrMalformed},
		{"case=prefix-only", "bwk_", ErrMalformed},
		{"case=upper-prefix", "BWK_" + good[4:], ErrMalformed},
		{"case=other-prefix", "ghp_" + good[4:], ErrMalformed},
		{"case=dash-separator", good[:sepAt] + "-" + good[sepAt+1:], ErrMalformed},
		{"case=no-separator", good[:sepAt] + good[sepAt+1:] + "0", ErrMalformed},
		{"case=extra-char", good + "0", ErrMalformed},
		{"case=leading-space", " " + good[:len(good)-1], ErrMalformed},
		{"case=trailing-newline", good[:len(good)-1] + "\n", ErrMalformed},
		{"case=bearer-prefix", "Bearer " + good, ErrMalformed},
		{"case=hyphen-in-secret", good[:30] + "-" + good[31:], ErrMalformed},
		{"case=plus-in-id", good[:5] + "+" + good[6:], ErrMalformed},
		{"case=nul", good[:40] + "\x00" + good[41:], ErrMalformed},
		{"case=utf8", good[:40] + "é" + good[42:], ErrMalformed},
		{"case=high-byte", good[:40] + "\xff" + good[41:], ErrMalformed},
		{"case=underscore-in-checksum", good[:len(good)-1] + "_", ErrMalformed},
		{"case=checksum-zeroed", good[:checkStart] + "000000", ErrChecksum},
		{"case=checksum-overflow", good[:checkStart] + "zzzzzz", ErrChecksum},
		{"case=all-zero", "bwk_000000000000_" + strings.Repeat("0", 49), ErrChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := Parse(tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if k != (Key{}) {
				t.Fatalf("rejected token returned %#v", k)
			}
		})
	}
}

func TestNoSecretInFormatting(t *testing.T) {
	t.Parallel()
	k := mustGenerate(t)
	for _, s := range []string{k.Redacted(), fmt.Sprintf("%#v", k)} {
		if strings.Contains(s, k.Secret) || !strings.Contains(s, k.ID) {
			t.Fatalf("%q leaks the secret or lost the id", s)
		}
	}
	_, err := Parse(k.String()[:20])
	if strings.Contains(err.Error(), k.ID[:5]) {
		t.Fatalf("error %q contains token data", err)
	}
}

func TestParseAllocations(t *testing.T) {
	tok := mustGenerate(t).String()
	bad := tok[:len(tok)-1] + "!"
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(bad) }); n != 0 {
		t.Fatalf("rejecting a malformed token allocated %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(tok) }); n > 1 {
		t.Fatalf("Parse allocated %v times, want ≤ 1", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(mustGenerate(f).String())
	f.Add(Key{ID: "000000000000", Secret: strings.Repeat("0", SecretLen)}.String())
	f.Add("")
	f.Add("bwk_")
	f.Add("bwk_000000000000_" + strings.Repeat("0", 49))
	f.Add(strings.Repeat("_", TokenLen))
	f.Fuzz(func(t *testing.T, token string) {
		k, err := Parse(token)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrChecksum) {
				t.Fatalf("unexpected error %v", err)
			}
			if k != (Key{}) {
				t.Fatalf("error with non-zero key %#v", k)
			}
			return
		}
		if got := k.String(); got != token {
			t.Fatalf("accepted %q re-serialises to %q", token, got)
		}
		if len(k.ID) != IDLen || len(k.Secret) != SecretLen {
			t.Fatalf("accepted key with lengths %d/%d", len(k.ID), len(k.Secret))
		}
	})
}

func BenchmarkParse(b *testing.B) {
	tok := mustGenerate(b).String()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}
