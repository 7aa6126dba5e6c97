// Package audit owns Bulwark's audit sink: the one place security events
// (sign-ins, client changes, key rotations, blocks) are written, both as an
// append-only storage.AuditEvent row and as one structured log line marked
// "audit": true for log shippers.
//
// Audit records are meant to be read by people and kept for a long time, so
// the sink scrubs anything that looks like a credential before it is
// written. The request id comes from server/reqinfo, which the access-log
// middleware puts in the request context.
package audit
