// Package audit owns Bulwark's audit sink: the one place security events
// (sign-ins, client changes, key rotations, blocks) are written, both as an
// append-only storage.AuditEvent row and as one structured log line marked
// "audit": true for log shippers.
//
// Audit records are meant to be read by people and kept for a long time, so
// the sink scrubs anything that looks like a credential before it is
// written. The request id comes from server/reqinfo, which the access-log
// middleware puts in the request context.
//
// The event of an issued token is stored with the token itself
// (Sink.WithToken and storage.TokenAudit): the sink shapes it, the store
// writes it in the token's statement, so both exist or neither does.
package audit
