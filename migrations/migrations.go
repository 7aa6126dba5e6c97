package migrations

import "embed"

// FS holds the numbered SQL migration files at its root.
//
//go:embed *.sql
var FS embed.FS
