package postgres

// GrantStatements exposes the statements that find a grant's rows by
// request id to the external tests, which check their plans.
var GrantStatements = map[string]string{
	"rotate refresh token":  rotateRefreshSQL,
	"revoke refresh family": revokeRefreshFamilySQL,
	"revoke access family":  revokeAccessFamilySQL,
}
