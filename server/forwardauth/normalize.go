package forwardauth

import (
	"errors"
	"path"
	"strings"
	"unicode/utf8"
)

// MaxURILength bounds the forwarded URI; longer ones are refused.
const MaxURILength = 8 << 10

// ErrPathRefused is returned for a forwarded path that is malformed or uses
// encoding tricks (encoded slashes, backslashes or dots, double encoding,
// control characters) whose meaning differs between the gateway, this
// server and the upstream. Such paths are refused outright instead of being
// guessed at.
var ErrPathRefused = errors.New("forwardauth: path refused")

// NormalizePath turns a forwarded request URI into the path rules are
// matched against: the query and fragment are dropped, percent-escapes
// decoded, duplicate slashes merged and dot segments resolved (RFC 3986
// §5.2.4), so "/public/../admin" matches the "/admin" rule. A path that
// could be read differently by the upstream is refused with ErrPathRefused.
func NormalizePath(raw string) (string, error) {
	if raw == "" || len(raw) > MaxURILength {
		return "", ErrPathRefused
	}
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if !strings.HasPrefix(raw, "/") {
		return "", ErrPathRefused
	}
	decoded, err := decodePercent(raw)
	if err != nil {
		return "", err
	}
	if !utf8.ValidString(decoded) || strings.ContainsRune(decoded, '\\') {
		return "", ErrPathRefused
	}
	for _, c := range []byte(decoded) {
		if c < 0x20 || c == 0x7f {
			return "", ErrPathRefused
		}
	}
	if dotWithParameters(decoded) {
		return "", ErrPathRefused
	}
	clean := path.Clean(decoded)
	if strings.HasSuffix(decoded, "/") && clean != "/" {
		// A trailing slash is kept: "/admin/" and "/admin" may be different
		// resources upstream, and a "/admin/**" rule matches both anyway.
		clean += "/"
	}
	return clean, nil
}

// dotWithParameters reports a segment that is ".", ".." or empty once its
// path parameters are stripped ("..;", "..;x=1", ";x"). Servlet containers
// (Tomcat, Jetty, Spring) strip ";…" from each segment before resolving
// dot segments, so "/public/..;/admin" reaches them as "/admin" while it
// would match a "/public/**" rule here.
func dotWithParameters(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if name, _, ok := strings.Cut(seg, ";"); ok && (name == "" || name == "." || name == "..") {
			return true
		}
	}
	return false
}

// decodePercent decodes %XX escapes. Escapes of '/', '\', '.', '%', '?'
// and '#' are refused: an upstream that decodes once more, or not at all,
// would see another path than the one the rule matched, and a decoded '?'
// or '#' would read as the end of the path.
func decodePercent(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", ErrPathRefused
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", ErrPathRefused
		}
		c := hi<<4 | lo
		switch c {
		case '/', '\\', '.', '%', '?', '#':
			return "", ErrPathRefused
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
