// Package web holds Bulwark's HTML templates and static assets, embedded in
// the binary so a deployment is one file.
//
// templates/public/ are the pages end users see on the public listener
// (login, consent, logout, errors); templates/console/ belong to the admin
// console. static/ is served as-is (CSS only: the pages run no script).
package web

import (
	"embed"
	"html/template"
)

// FS holds templates/ and static/.
//
//go:embed templates static
var FS embed.FS

// ParsePublic parses every public page template into one set. Each page is a
// named template ("login", "consent", "logout", "message", "error") that
// includes the shared "header" and "footer". Callers parse once at start-up.
func ParsePublic() (*template.Template, error) {
	return template.ParseFS(FS, "templates/public/*.html")
}
