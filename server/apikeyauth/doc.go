// Package apikeyauth authenticates HTTP requests with Bulwark API keys
// (Authorization: Bearer bwk_...), checks their scopes, and serves the
// holder's self-rotation endpoint (POST /apikeys/self/rotate).
//
// It owns the mapping from keys/apikeys errors to HTTP answers, in this one
// place: RFC 6750 §3 error JSON and WWW-Authenticate challenges, never a
// hint whether an unknown id or a wrong secret was presented (both are the
// same "invalid api key"), and a clear reason when the secret matched a
// revoked or expired key. The life-cycle rules themselves live in
// keys/apikeys.
//
// A request made with a key whose rotation is pending is answered normally
// with the header "Bulwark-Api-Key-Status: rotating" and
// "Bulwark-Api-Key-Expires: <RFC 3339>", so a holder can notice the
// rotation from any response and collect its successor before the grace
// period ends.
package apikeyauth
