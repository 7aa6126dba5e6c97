// Package dpoptest is a DPoP client for tests (RFC 9449 §4): it holds a key
// pair and makes proofs with lestrrat-go/jwx, a JOSE implementation
// independent of the go-jose the server verifies with, so a test of the
// server is not a test of go-jose against itself. Options break one thing
// at a time, for the negative cases. Only tests import it.
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Client is one DPoP key pair.
type Client struct {
	priv crypto.Signer
	alg  jwa.SignatureAlgorithm
	pub  jwk.Key
	// Now is the client's clock (iat); nil means time.Now.
	Now func() time.Time
}

// NewES256 returns a client with a fresh P-256 key.
func NewES256(t testing.TB) *Client {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return New(t, k, "ES256")
}

// NewEdDSA returns a client with a fresh Ed25519 key.
func NewEdDSA(t testing.TB) *Client {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return New(t, k, "EdDSA")
}

// NewRSA returns a client with a fresh RSA key of the given size, signing
// with alg (RS256 or PS256).
func NewRSA(t testing.TB, bits int, alg string) *Client {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return New(t, k, alg)
}

// New returns a client for priv signing with alg.
func New(t testing.TB, priv crypto.Signer, alg string) *Client {
	t.Helper()
	a, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		t.Fatalf("dpoptest: unknown algorithm %q", alg)
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &Client{priv: priv, alg: a, pub: pub}
}

// Private is the client's private key.
func (c *Client) Private() crypto.Signer { return c.priv }

// PublicJWK is the client's public key as a JWK (the proofs' jwk header).
func (c *Client) PublicJWK() jwk.Key { return c.pub }

// JKT is the RFC 7638 SHA-256 thumbprint of the client's public key,
// base64url: the cnf.jkt of tokens bound to it.
func (c *Client) JKT(t testing.TB) string {
	t.Helper()
	sum, err := c.pub.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// proof is a proof being built: what the options change.
type proof struct {
	header  map[string]any
	claims  map[string]any
	alg     jwa.SignatureAlgorithm
	signKey any
	raw     func(string) string
}

// Option changes one thing about a proof.
type Option func(*proof)

// WithAccessToken adds ath, the hash of the token the proof accompanies.
func WithAccessToken(token string) Option {
	return func(p *proof) { p.claims["ath"] = ATH(token) }
}

// WithNonce adds the server's nonce.
func WithNonce(n string) Option { return WithClaim("nonce", n) }

// WithIAT sets iat.
func WithIAT(at time.Time) Option { return WithClaim("iat", at.Unix()) }

// WithClaim sets claim k to v (any JSON value).
func WithClaim(k string, v any) Option { return func(p *proof) { p.claims[k] = v } }

// WithoutClaim removes claim k.
func WithoutClaim(k string) Option { return func(p *proof) { delete(p.claims, k) } }

// WithHeader sets header parameter k to v (for "jwk", a jwk.Key).
func WithHeader(k string, v any) Option { return func(p *proof) { p.header[k] = v } }

// WithoutHeader removes header parameter k.
func WithoutHeader(k string) Option { return func(p *proof) { delete(p.header, k) } }

// WithSigner signs with alg and key instead of the client's own; the jwk
// header still names the client's public key.
func WithSigner(alg string, key any) Option {
	return func(p *proof) {
		a, _ := jwa.LookupSignatureAlgorithm(alg)
		p.alg, p.signKey = a, key
	}
}

// WithRaw rewrites the finished compact proof.
func WithRaw(f func(string) string) Option { return func(p *proof) { p.raw = f } }

// Proof returns a compact DPoP proof for a request with the given method
// and URL: typ dpop+jwt, the client's alg and public jwk, a fresh jti, htm,
// htu and iat now; then the options apply.
func (c *Client) Proof(t testing.TB, method, url string, opts ...Option) string {
	t.Helper()
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	p := &proof{
		header: map[string]any{jws.TypeKey: "dpop+jwt", jws.JWKKey: c.pub},
		claims: map[string]any{"jti": uuid.NewString(), "htm": method, "htu": url, "iat": now().Unix()},
		alg:    c.alg, signKey: c.priv,
	}
	for _, o := range opts {
		o(p)
	}
	hdr := jws.NewHeaders()
	for k, v := range p.header {
		if err := hdr.Set(k, v); err != nil {
			t.Fatalf("dpoptest: header %s: %v", k, err)
		}
	}
	payload, err := json.Marshal(p.claims)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.Sign(payload, jws.WithKey(p.alg, p.signKey, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatalf("dpoptest: sign: %v", err)
	}
	s := string(out)
	if p.raw != nil {
		s = p.raw(s)
	}
	return s
}

// ATH is the ath of a proof accompanying token (RFC 9449 §4.2).
func ATH(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
