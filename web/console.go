package web

import "html/template"

// ParseConsole parses every admin console template into one set with funcs
// available to them. Each page is a named template that includes the shared
// "top" and "bottom" of templates/console/layout.html. Callers parse once at
// start-up.
func ParseConsole(funcs template.FuncMap) (*template.Template, error) {
	return template.New("console").Funcs(funcs).ParseFS(FS, "templates/console/*.html")
}
