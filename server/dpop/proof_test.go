package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/server/dpop/dpoptest"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

const (
	tokenURL = "https://server.example/oauth2/token"
	apiURL   = "https://api.example/orders"
	token    = "eyJhbGciOiJFUzI1NiJ9.e30.access-token-for-test"
)

var nonceKey = []byte("nonce-key-0123456789-0123456789-0123456789")

// fixedClock is a settable clock shared by the verifier and the client.
type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }

func newVerifier(t *testing.T, clock *fixedClock, policy dpop.NoncePolicy, keys ...[]byte) *dpop.Verifier {
	t.Helper()
	if len(keys) == 0 {
		keys = [][]byte{nonceKey}
	}
	v, err := dpop.New(dpop.Config{Store: memory.New(memory.Config{}), NonceKeys: keys, Nonce: policy, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifyEachCheck builds, per case, a proof that is valid except for
// exactly one thing, and expects the refusal to name that one check. The
// valid cases pass every check, so each refusal is that case's doing.
func TestVerifyEachCheck(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1_800_000_000, 0)}
	es := dpoptest.NewES256(t)
	es.Now = clock.now
	other := dpoptest.NewES256(t)
	ed := dpoptest.NewEdDSA(t)
	ed.Now = clock.now
	rs := dpoptest.NewRSA(t, 2048, "RS256")
	rs.Now = clock.now
	ps := dpoptest.NewRSA(t, 2048, "PS256")
	ps.Now = clock.now
	ecPriv, err := jwk.Import(es.Private())
	if err != nil {
		t.Fatal(err)
	}
	secret, err := jwk.Import([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es384 := dpoptest.New(t, p384, "ES384")
	es384.Now = clock.now

	v := newVerifier(t, clock, dpop.NonceTokenEndpoint)
	nonce := v.Nonce()
	at := dpop.Check{Method: "POST", URL: tokenURL}
	rs1 := dpop.Check{Method: "GET", URL: apiURL, AccessToken: token}
	n := dpoptest.WithNonce(nonce)
	ath := dpoptest.WithAccessToken(token)

	cases := []struct {
		name      string
		header    func(testing.TB) []string
		check     dpop.Check
		reason    string // "" = accepted
		code      string
		malformed bool
	}{
		{"case=ES256 at token endpoint", one(es, "POST", tokenURL, n), at, "", "", false},
		{"case=EdDSA", one(ed, "POST", tokenURL, n), at, "", "", false},
		{"case=RS256 2048", one(rs, "POST", tokenURL, n), at, "", "", false},
		{"case=PS256 2048", one(ps, "POST", tokenURL, n), at, "", "", false},
		{"case=resource request without nonce", one(es, "GET", apiURL, ath), rs1, "", "", false},
		{"case=htu normalized (case, default port, query, fragment)", one(es, "POST", "HTTPS://Server.EXAMPLE:443/oauth2/token?x=1#frag", n), at, "", "", false},
		{"case=htu percent-escape of unreserved", one(es, "POST", "https://server.example/oauth2/%74oken", n), at, "", "", false},

		{"case=no header", func(testing.TB) []string { return nil }, at, dpop.ReasonMissing, dpop.CodeInvalidProof, true},
		{"case=two headers", func(t testing.TB) []string {
			return []string{es.Proof(t, "POST", tokenURL, n), es.Proof(t, "POST", tokenURL, n)}
		}, at, dpop.ReasonHeader, dpop.CodeInvalidProof, true},
		{"case=oversized", func(testing.TB) []string { return []string{strings.Repeat("a", dpop.MaxProofBytes+1)} }, at, dpop.ReasonHeader, dpop.CodeInvalidProof, true},
		{"case=not a JWS", func(testing.TB) []string { return []string{"not.a.jws"} }, at, dpop.ReasonJWS, dpop.CodeInvalidProof, true},
		{"case=JSON serialization", func(testing.TB) []string { return []string{`{"payload":"e30","signatures":[]}`} }, at, dpop.ReasonJWS, dpop.CodeInvalidProof, true},
		{"case=typ JWT", one(es, "POST", tokenURL, n, dpoptest.WithHeader("typ", "JWT")), at, dpop.ReasonTyp, dpop.CodeInvalidProof, false},
		{"case=typ missing", one(es, "POST", tokenURL, n, dpoptest.WithoutHeader("typ")), at, dpop.ReasonTyp, dpop.CodeInvalidProof, false},
		{"case=alg HS256", one(es, "POST", tokenURL, n, dpoptest.WithSigner("HS256", []byte("0123456789abcdef0123456789abcdef"))), at, dpop.ReasonAlg, dpop.CodeInvalidProof, false},
		{"case=alg ES384", one(es384, "POST", tokenURL, n), at, dpop.ReasonAlg, dpop.CodeInvalidProof, false},
		{"case=jwk missing", one(es, "POST", tokenURL, n, dpoptest.WithoutHeader("jwk")), at, dpop.ReasonJWK, dpop.CodeInvalidProof, false},
		{"case=jwk private", one(es, "POST", tokenURL, n, dpoptest.WithHeader("jwk", ecPriv)), at, dpop.ReasonJWK, dpop.CodeInvalidProof, false},
		{"case=jwk symmetric", one(es, "POST", tokenURL, n, dpoptest.WithHeader("jwk", secret)), at, dpop.ReasonJWK, dpop.CodeInvalidProof, false},
		{"case=jwk RSA 1024", weakRSAProof(clock, nonce), at, dpop.ReasonJWK, dpop.CodeInvalidProof, false},
		{"case=jwk of another kind than alg", one(es, "POST", tokenURL, n, dpoptest.WithHeader("jwk", rs.PublicJWK())), at, dpop.ReasonJWK, dpop.CodeInvalidProof, false},
		{"case=signed by another key", one(es, "POST", tokenURL, n, dpoptest.WithSigner("ES256", other.Private())), at, dpop.ReasonSignature, dpop.CodeInvalidProof, false},
		{"case=signature altered", one(es, "POST", tokenURL, n, dpoptest.WithRaw(flipSignature)), at, dpop.ReasonSignature, dpop.CodeInvalidProof, false},
		{"case=jti missing", one(es, "POST", tokenURL, n, dpoptest.WithoutClaim("jti")), at, dpop.ReasonClaims, dpop.CodeInvalidProof, false},
		{"case=jti empty", one(es, "POST", tokenURL, n, dpoptest.WithClaim("jti", "")), at, dpop.ReasonClaims, dpop.CodeInvalidProof, false},
		{"case=jti too long", one(es, "POST", tokenURL, n, dpoptest.WithClaim("jti", strings.Repeat("j", 257))), at, dpop.ReasonClaims, dpop.CodeInvalidProof, false},
		{"case=htm missing", one(es, "POST", tokenURL, n, dpoptest.WithoutClaim("htm")), at, dpop.ReasonClaims, dpop.CodeInvalidProof, false},
		{"case=htu missing", one(es, "POST", tokenURL, n, dpoptest.WithoutClaim("htu")), at, dpop.ReasonClaims, dpop.CodeInvalidProof, false},
		{"case=iat missing", one(es, "POST", tokenURL, n, dpoptest.WithoutClaim("iat")), at, dpop.ReasonClaims, dpop.CodeInvalidProof, false},
		{"case=iat a string", one(es, "POST", tokenURL, n, dpoptest.WithClaim("iat", "1800000000")), at, dpop.ReasonClaims, dpop.CodeInvalidProof, false},
		{"case=htm GET at a POST endpoint", one(es, "GET", tokenURL, n), at, dpop.ReasonHTM, dpop.CodeInvalidProof, false},
		{"case=htm lowercase", one(es, "post", tokenURL, n), at, dpop.ReasonHTM, dpop.CodeInvalidProof, false},
		{"case=htu another path", one(es, "POST", "https://server.example/oauth2/revoke", n), at, dpop.ReasonHTU, dpop.CodeInvalidProof, false},
		{"case=htu another host", one(es, "POST", "https://evil.example/oauth2/token", n), at, dpop.ReasonHTU, dpop.CodeInvalidProof, false},
		{"case=htu http instead of https", one(es, "POST", "http://server.example/oauth2/token", n), at, dpop.ReasonHTU, dpop.CodeInvalidProof, false},
		{"case=htu another port", one(es, "POST", "https://server.example:8443/oauth2/token", n), at, dpop.ReasonHTU, dpop.CodeInvalidProof, false},
		{"case=htu relative", one(es, "POST", "/oauth2/token", n), at, dpop.ReasonHTU, dpop.CodeInvalidProof, false},
		{"case=iat too old", one(es, "POST", tokenURL, n, dpoptest.WithIAT(clock.t.Add(-61*time.Second))), at, dpop.ReasonIAT, dpop.CodeInvalidProof, false},
		{"case=iat in the future", one(es, "POST", tokenURL, n, dpoptest.WithIAT(clock.t.Add(61*time.Second))), at, dpop.ReasonIAT, dpop.CodeInvalidProof, false},
		{"case=ath missing on a resource request", one(es, "GET", apiURL), rs1, dpop.ReasonATH, dpop.CodeInvalidProof, false},
		{"case=ath of another token", one(es, "GET", apiURL, dpoptest.WithAccessToken(token+"x")), rs1, dpop.ReasonATH, dpop.CodeInvalidProof, false},
		{"case=nonce missing at the token endpoint", one(es, "POST", tokenURL), at, dpop.ReasonNonce, dpop.CodeUseNonce, false},
		{"case=nonce made up", one(es, "POST", tokenURL, dpoptest.WithNonce("made-up")), at, dpop.ReasonNonce, dpop.CodeUseNonce, false},
		{"case=nonce wrong on a resource request", one(es, "GET", apiURL, ath, dpoptest.WithNonce("made-up")), rs1, dpop.ReasonNonce, dpop.CodeUseNonce, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tc.header(t), tc.check)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			e, ok := dpop.AsError(err)
			if !ok {
				t.Fatalf("want a refusal for %s, got proof %v, error %v", tc.reason, p, err)
			}
			if e.Reason != tc.reason || e.Code != tc.code || e.Malformed != tc.malformed {
				t.Fatalf("refused for %+v, want reason %s code %s malformed %v", e, tc.reason, tc.code, tc.malformed)
			}
			if e.Description() == "" || strings.Contains(e.Description(), token) {
				t.Fatalf("description %q", e.Description())
			}
		})
	}
}

// one makes a header-values function for a single proof, built when the
// case runs (each run gets a fresh jti).
func one(c *dpoptest.Client, method, url string, opts ...dpoptest.Option) func(testing.TB) []string {
	return func(t testing.TB) []string { return []string{c.Proof(t, method, url, opts...)} }
}

func flipSignature(s string) string {
	i := strings.LastIndexByte(s, '.')
	sig := []byte(s[i+1:])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	return s[:i+1] + string(sig)
}

// weakRSAProof is a proof that is valid but for its RSA-1024 key. jwx
// refuses to handle such a key, so go-jose signs this one.
func weakRSAProof(clock *fixedClock, nonce string) func(testing.TB) []string {
	return func(t testing.TB) []string {
		k, err := rsa.GenerateKey(rand.Reader, 1024) // #nosec G403 -- the weak key is the point: it must be refused
		if err != nil {
			t.Fatal(err)
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k},
			(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(map[string]any{"jti": "weak", "htm": "POST", "htu": tokenURL, "iat": clock.t.Unix(), "nonce": nonce})
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		out, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return []string{out}
	}
}

func TestVerifyBindsTheThumbprint(t *testing.T) {
	clock := &fixedClock{t: time.Now()}
	v := newVerifier(t, clock, dpop.NonceNever)
	for _, c := range []*dpoptest.Client{dpoptest.NewES256(t), dpoptest.NewEdDSA(t), dpoptest.NewRSA(t, 2048, "PS256")} {
		p, err := v.Verify(context.Background(), []string{c.Proof(t, "POST", tokenURL)}, dpop.Check{Method: "POST", URL: tokenURL})
		if err != nil {
			t.Fatal(err)
		}
		// jwx computes the RFC 7638 thumbprint independently.
		if want := c.JKT(t); p.JKT != want {
			t.Fatalf("jkt %s, want %s", p.JKT, want)
		}
	}
}

func TestVerifyRefusesReplay(t *testing.T) {
	clock := &fixedClock{t: time.Now()}
	v := newVerifier(t, clock, dpop.NonceNever)
	c := dpoptest.NewES256(t)
	proof := []string{c.Proof(t, "POST", tokenURL)}
	check := dpop.Check{Method: "POST", URL: tokenURL}
	if _, err := v.Verify(context.Background(), proof, check); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(context.Background(), proof, check)
	if e, ok := dpop.AsError(err); !ok || e.Reason != dpop.ReasonReplay {
		t.Fatalf("replay: %v", err)
	}
	// The same jti from another key is another proof.
	if _, err := v.Verify(context.Background(), []string{dpoptest.NewES256(t).Proof(t, "POST", tokenURL, dpoptest.WithClaim("jti", "shared"))}, check); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), []string{c.Proof(t, "POST", tokenURL, dpoptest.WithClaim("jti", "shared"))}, check); err != nil {
		t.Fatal(err)
	}
}

// failingStore reports the database as unavailable.
type failingStore struct{}

var errDown = errors.New("database down")

func (failingStore) UseDPoPProof(context.Context, string, time.Time) (bool, error) {
	return false, errDown
}

func TestVerifyStoreFailureIsNotARefusal(t *testing.T) {
	v, err := dpop.New(dpop.Config{Store: failingStore{}, NonceKeys: [][]byte{nonceKey}, Nonce: dpop.NonceNever})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), []string{dpoptest.NewES256(t).Proof(t, "POST", tokenURL)}, dpop.Check{Method: "POST", URL: tokenURL})
	if _, refused := dpop.AsError(err); refused || !errors.Is(err, errDown) {
		t.Fatalf("want the store's error, got %v", err)
	}
}

func TestNonceRotation(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1_800_000_000, 0)}
	v := newVerifier(t, clock, dpop.NonceTokenEndpoint)
	c := dpoptest.NewES256(t)
	c.Now = clock.now
	check := dpop.Check{Method: "POST", URL: tokenURL}
	try := func(v *dpop.Verifier, nonce string) error {
		_, err := v.Verify(context.Background(), []string{c.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce))}, check)
		return err
	}
	issued := v.Nonce()
	if err := try(v, issued); err != nil {
		t.Fatalf("current nonce: %v", err)
	}
	// Next period: the nonce changes, the previous one still works.
	clock.t = clock.t.Add(dpop.DefaultNoncePeriod)
	if v.Nonce() == issued {
		t.Fatal("the nonce did not change after a period")
	}
	if err := try(v, issued); err != nil {
		t.Fatalf("previous nonce: %v", err)
	}
	// Two periods on it is stale.
	clock.t = clock.t.Add(dpop.DefaultNoncePeriod)
	if err := try(v, issued); err == nil {
		t.Fatal("a nonce two periods old was accepted")
	} else if e, _ := dpop.AsError(err); e == nil || e.Code != dpop.CodeUseNonce {
		t.Fatalf("stale nonce: %v", err)
	}
	// Another replica with the same key agrees; one with another key does not.
	same := newVerifier(t, clock, dpop.NonceTokenEndpoint)
	if same.Nonce() != v.Nonce() {
		t.Fatal("replicas with one key disagree on the nonce")
	}
	foreign := newVerifier(t, clock, dpop.NonceTokenEndpoint, []byte("another-key-0123456789-0123456789-0123"))
	if err := try(foreign, v.Nonce()); err == nil {
		t.Fatal("a nonce under another key was accepted")
	}
	// After the master secret rotates, nonces of the old key still verify.
	rotated := newVerifier(t, clock, dpop.NonceTokenEndpoint, []byte("another-key-0123456789-0123456789-0123"), nonceKey)
	if err := try(rotated, v.Nonce()); err != nil {
		t.Fatalf("old-key nonce after rotation: %v", err)
	}
	if rotated.Nonce() == v.Nonce() {
		t.Fatal("the rotated verifier issues under the old key")
	}
}

func TestNoncePolicies(t *testing.T) {
	clock := &fixedClock{t: time.Now()}
	c := dpoptest.NewES256(t)
	tokenReq := func(v *dpop.Verifier) error {
		_, err := v.Verify(context.Background(), []string{c.Proof(t, "POST", tokenURL)}, dpop.Check{Method: "POST", URL: tokenURL})
		return err
	}
	resourceReq := func(v *dpop.Verifier) error {
		_, err := v.Verify(context.Background(), []string{c.Proof(t, "GET", apiURL, dpoptest.WithAccessToken(token))}, dpop.Check{Method: "GET", URL: apiURL, AccessToken: token})
		return err
	}
	for _, tc := range []struct {
		policy              dpop.NoncePolicy
		tokenOK, resourceOK bool
	}{
		{dpop.NonceTokenEndpoint, false, true},
		{dpop.NonceEverywhere, false, false},
		{dpop.NonceNever, true, true},
	} {
		v := newVerifier(t, clock, tc.policy)
		if err := tokenReq(v); (err == nil) != tc.tokenOK {
			t.Errorf("policy %s: token request without nonce: %v", tc.policy, err)
		}
		if err := resourceReq(v); (err == nil) != tc.resourceOK {
			t.Errorf("policy %s: resource request without nonce: %v", tc.policy, err)
		}
	}
	for _, s := range []string{"token", "all", "off"} {
		p, err := dpop.ParseNoncePolicy(s)
		if err != nil || p.String() != s {
			t.Fatalf("ParseNoncePolicy(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := dpop.ParseNoncePolicy("sometimes"); err == nil {
		t.Fatal("an unknown policy was accepted")
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := dpop.New(dpop.Config{NonceKeys: [][]byte{[]byte("short")}, Window: time.Hour, NoncePeriod: 1500 * time.Millisecond})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"replay store", "32 bytes", "window", "nonce period"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestNormalizeURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://a.example/x", "https://a.example/x"},
		{"HTTPS://A.Example:443/x?q=1#f", "https://a.example/x"},
		{"http://a.example:80", "http://a.example/"},
		{"http://a.example:8080/", "http://a.example:8080/"},
		{"https://[::1]:443/p", "https://[::1]/p"},
		{"https://[::1]:8443/p", "https://[::1]:8443/p"},
		{"https://a.example/%7euser/%2f", "https://a.example/~user/%2F"},
		{"https://a.example/a%20b", "https://a.example/a%20b"},
	} {
		got, ok := dpop.NormalizeURL(tc.in)
		if !ok || got != tc.want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{"", "/relative", "ftp://a.example/", "https://user@a.example/", "mailto:x@y", "https:///nohost", "https://a.example/%zz"} {
		if got, ok := dpop.NormalizeURL(bad); ok {
			t.Errorf("NormalizeURL(%q) = %q, want refusal", bad, got)
		}
	}
}

func TestChallenge(t *testing.T) {
	got := dpop.Challenge("bulwark", dpop.CodeUseNonce, "A DPoP proof with the server's current nonce is required.")
	want := `DPoP realm="bulwark", algs="ES256 EdDSA PS256 RS256", error="use_dpop_nonce", error_description="A DPoP proof with the server's current nonce is required."`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
