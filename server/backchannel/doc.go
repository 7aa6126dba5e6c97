// Package backchannel delivers OpenID Connect Back-Channel Logout 1.0
// logout tokens to relying parties.
//
// The flows that end sessions (RP-initiated logout in server/oauth; user
// disable, password reset, session and consent revocation in server/admin)
// queue logouts through storage.BackchannelStore in the transaction that
// ends the session, so a crash after the commit loses nothing and a
// rollback sends nothing. EndLoginSession is that transaction for one login
// session.
//
// A Worker runs on every replica. It claims due rows with a lease (one
// atomic statement, FOR UPDATE SKIP LOCKED on Postgres), signs each logout
// token with the key ring's ID token signer at delivery time (typ
// logout+jwt, a short exp, the row's fixed jti), POSTs it form-encoded to
// the client's backchannel_logout_uri through server/egress (the SSRF-safe
// client), and deletes the row on a 2xx answer. A failure is a metric and
// an audit event, and the row is retried with exponential backoff until
// its maximum age; deliveries are rate-limited per client. A worker that
// dies mid-delivery leaves its lease to run out, and another replica
// delivers the row again with the same jti. Workers wake on
// storage.BackchannelChannel and also poll.
package backchannel
