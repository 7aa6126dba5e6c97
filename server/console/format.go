package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

// funcs are the helpers templates use. They return plain strings, which
// html/template escapes like any other value.
func (c *Console) funcs() template.FuncMap {
	return template.FuncMap{
		"ts": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return relative(c.cfg.Now().Sub(t))
		},
		"dur":  human,
		"join": func(s []string, sep string) string { return strings.Join(s, sep) },
		"has": func(s []string, v string) bool {
			for _, x := range s {
				if x == v {
					return true
				}
			}
			return false
		},
		"stateClass": stateClass,
		// totpEnrolled reads the Service's redacted users: it says whether a
		// second factor exists, never what it is.
		"totpEnrolled": admin.TOTPEnrolled,
	}
}

// relative says how long ago (d > 0) or from now (d < 0) something was.
func relative(d time.Duration) string {
	if d < 0 {
		return "in " + human(-d)
	}
	if d < time.Minute {
		return "just now"
	}
	return human(d) + " ago"
}

// human renders a duration in the largest sensible unit.
func human(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
}

// stateClass maps states and outcomes to a badge colour class. Signing key
// and API key states share the names "active" and "revoked".
func stateClass(s string) string {
	switch s {
	case string(storage.KeyActive), "success", "enabled":
		return "ok"
	case string(storage.KeyNext), string(storage.APIKeyRotating):
		return "info"
	case string(storage.KeyRetired), string(storage.APIKeyExpired):
		return "muted"
	case string(storage.KeyRevoked), "failure", "denied", "blocked", "disabled":
		return "bad"
	}
	return "muted"
}
