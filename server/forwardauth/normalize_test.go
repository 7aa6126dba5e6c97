package forwardauth

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"case=plain", "/orders/1", "/orders/1"},
		{"case=query dropped", "/orders?id=1#x", "/orders"},
		{"case=dot dot", "/public/../admin", "/admin"},
		{"case=dot", "/./admin/./users", "/admin/users"},
		{"case=above root", "/../../admin", "/admin"},
		{"case=duplicate slashes", "//admin///users", "/admin/users"},
		{"case=trailing slash kept", "/admin/", "/admin/"},
		{"case=root", "/", "/"},
		{"case=percent decoded", "/caf%C3%A9/%41", "/café/A"},
		{"case=traversal after decoding", "/public/%41/../../admin", "/admin"},
		{"case=path parameter on a named segment", "/orders;v=2/1", "/orders;v=2/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizePath(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("NormalizePath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestNormalizePathRefusesTricks(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"case=empty", ""},
		{"case=relative", "admin"},
		{"case=encoded slash", "/public%2F..%2Fadmin"},
		{"case=encoded slash lower", "/public%2f..%2fadmin"},
		{"case=encoded dot", "/public/%2e%2e/admin"},
		{"case=half encoded dot", "/public/.%2E/admin"},
		{"case=encoded backslash", "/public%5C..%5Cadmin"},
		{"case=backslash", "/public\\..\\admin"},
		{"case=double encoding", "/public/%252e%252e/admin"},
		{"case=NUL", "/admin%00.json"},
		{"case=raw NUL", "/admin\x00"},
		{"case=control", "/admin%0d%0aX: y"},
		{"case=bad escape", "/admin%zz"},
		{"case=truncated escape", "/admin%4"},
		{"case=invalid UTF-8", "/admin%ff"},
		{"case=too long", "/" + strings.Repeat("a", MaxURILength)},
		{"case=dot dot with a path parameter", "/public/..;/admin"},
		{"case=dot dot with a parameter value", "/public/..;x=1/admin"},
		{"case=dot with a path parameter", "/public/.;/admin"},
		{"case=encoded semicolon after dot dot", "/public/..%3B/admin"},
		{"case=empty segment with a parameter", "/public/;x/../admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizePath(tc.in)
			if !errors.Is(err, ErrPathRefused) {
				t.Fatalf("NormalizePath(%q) = %q, %v; want ErrPathRefused", tc.in, got, err)
			}
		})
	}
}

// FuzzNormalizePath: whatever comes in, an accepted path is absolute,
// has no empty, "." or ".." segment, and normalizing it again changes
// nothing.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/public/%2e%2e/admin", "//x//y/", "/%41%2F", "/a?b#c", "/caf%C3%A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizePath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(out, "/") || strings.Contains(out, "//") {
			t.Fatalf("%q -> %q", in, out)
		}
		for _, seg := range strings.Split(strings.Trim(out, "/"), "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q -> %q keeps a dot segment", in, out)
			}
		}
		if again, err := NormalizePath(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
	})
}
