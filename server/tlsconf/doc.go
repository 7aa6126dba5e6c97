// Package tlsconf owns Bulwark's TLS settings: a tls.Config with TLS 1.2 as
// the floor, AEAD-only forward-secret cipher suites, modern curves, and a
// certificate that is reloaded from disk without a restart (so short-lived
// certificates from ACME or cert-manager just work). It also checks that the
// configured issuer URL is https outside development, because an http issuer
// would let anyone on the path swap the JWKS and mint tokens.
package tlsconf
