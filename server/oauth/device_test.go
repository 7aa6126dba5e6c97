package oauth

import (
	"strings"
	"testing"
)

func TestNormalizeUserCode(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"BCDF-GHJK", "BCDFGHJK", true},
		{"bcdf-ghjk", "BCDFGHJK", true},
		{"bcdfghjk", "BCDFGHJK", true},
		{" Bc-Df GhJk ", "BCDFGHJK", true},
		{"BCDF-GHJ", "", false},                           // too short
		{"BCDF-GHJKL", "", false},                         // too long
		{"BCDF-GHJA", "", false},                          // a vowel is not in the alphabet
		{"BCDF-GHJ1", "", false},                          // nor a digit
		{"BCDF\x00GHJK", "", false},                       // NUL
		{"BCDF-GHJ\xff", "", false},                       // invalid UTF-8
		{"ＢCDF-GHJK", "", false},                          // full-width letter
		{strings.Repeat("-", 40) + "BCDFGHJK", "", false}, // oversized input
	} {
		got, ok := normalizeUserCode(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("case=%q: got %q %v, want %q %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestNewUserCode(t *testing.T) {
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 2000 {
		c, err := newUserCode()
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := normalizeUserCode(displayUserCode(c)); !ok || n != c {
			t.Fatalf("code %q does not survive display and normalisation", c)
		}
		seen[c] = true
		for _, r := range c {
			counts[r]++
		}
	}
	if len(seen) < 1990 {
		t.Fatalf("only %d distinct codes in 2000 draws", len(seen))
	}
	// 16 000 letters over 20: each letter about 800 times; a letter never or
	// hardly drawn would mean a biased or broken alphabet.
	if len(counts) != len(userCodeAlphabet) {
		t.Fatalf("%d letters drawn, want all %d", len(counts), len(userCodeAlphabet))
	}
	for r, n := range counts {
		if n < 500 || n > 1100 {
			t.Fatalf("letter %q drawn %d times of 16000", r, n)
		}
	}
}

func TestSafeLoginReturnTo(t *testing.T) {
	for in, want := range map[string]string{
		"/device?user_code=BCDF-GHJK&confirm=x": "/device?user_code=BCDF-GHJK&confirm=x",
		"/oauth2/auth?client_id=a":              "/oauth2/auth?client_id=a",
		"https://evil.example/device":           "",
		"//evil.example/device":                 "",
		"/device/decision":                      "",
		"/devices":                              "",
		"/device#x":                             "",
	} {
		if got := safeLoginReturnTo(in); got != want {
			t.Errorf("case=%q: got %q, want %q", in, got, want)
		}
	}
}
