// Package regtoken is the format of the bearer tokens of dynamic client
// registration: initial access tokens (RFC 7591 §3, "bwi_…") that admins
// issue, and registration access tokens (RFC 7592 §1, "bwr_…") that a
// registered client manages itself with.
//
// Both carry 256 random bits, so a fast keyed hash is as safe to store as
// a slow one: the table keeps HMAC-SHA256(pepper, token) and looks tokens
// up by it. The pepper derives from the master secret, so a database dump
// alone cannot even confirm a guessed token. Each configured master secret
// gives a pepper; lookups try all of them, so tokens survive a rotation of
// the master secret.
package regtoken
