// Package console owns Bulwark's admin web console under /admin/ on the
// admin listener: server-rendered pages (html/template, no inline script or
// style) over the same admin.Service the JSON API uses, so both behave
// identically.
//
// Sign-in is username + Argon2id password for users holding admin scopes,
// with an optional TOTP second factor (secret sealed with the master secret,
// the user id as AAD). Sessions live server-side as storage.LoginSession of
// kind "console", under a cookie of their own (__Host-bulwark_console with
// TLS) that is HttpOnly and SameSite=Strict; the public login session is a
// different kind and never opens the console. Sessions end on sign-out, on
// an idle timeout and on an absolute timeout, and get a fresh id at every
// sign-in (session fixation).
//
// Every state-changing form carries a CSRF token bound to the session (the
// sign-in form, before any session exists, a token sealed with the master
// secret and bound to a pre-session cookie); a missing or wrong token is
// 403. Every page and action requires the admin scope that the JSON API
// requires for the same operation (function-level authorization), and the
// Service applies the object-level rules (no scope escalation).
package console
