package forwardauth

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/server/dpop/dpoptest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// forwarded is the header set of a subrequest about GET
// https://api.example/api/orders/42?x=1.
func forwarded(authz string, proofs ...string) map[string][]string {
	h := map[string][]string{
		"X-Forwarded-Method": {"GET"}, "X-Forwarded-Host": {"api.example"}, "X-Forwarded-Uri": {"/api/orders/42?x=1"},
		"Authorization": {authz},
	}
	if len(proofs) > 0 {
		h["DPoP"] = proofs
	}
	return h
}

const orderURL = "https://api.example/api/orders/42"

// TestForwardAuthDPoP: "Authorization: DPoP <JWT>" with a proof for the
// original request (htm and htu from the forwarded headers, ath of the
// token) passes; every way of getting it wrong is refused, with the DPoP
// challenge; a DPoP-bound token presented as Bearer is refused.
func TestForwardAuthDPoP(t *testing.T) {
	e := newEnv(t, handlerRules, nil)
	srv := serve(t, e)
	c, other := dpoptest.NewES256(t), dpoptest.NewES256(t)
	bound := e.mint(t, "at+jwt", jwt.MapClaims{"cnf": map[string]any{"jkt": c.JKT(t)}})
	unbound := e.mint(t, "at+jwt", nil)
	foreignCnf := e.mint(t, "at+jwt", jwt.MapClaims{"cnf": map[string]any{"x5t#S256": "abc"}})
	proof := func(opts ...dpoptest.Option) string {
		return c.Proof(t, "GET", orderURL, append([]dpoptest.Option{dpoptest.WithAccessToken(bound)}, opts...)...)
	}
	replayed := proof()
	if res := do(t, srv, "GET", DefaultPath, forwarded("DPoP "+bound, replayed)); res.StatusCode != http.StatusOK {
		t.Fatalf("first use: %d %q", res.StatusCode, res.Header.Values("WWW-Authenticate"))
	}
	withProto := forwarded("DPoP "+bound, c.Proof(t, "GET", "http://api.example/api/orders/42", dpoptest.WithAccessToken(bound)))
	withProto["X-Forwarded-Proto"] = []string{"http"}
	badProto := forwarded("DPoP "+bound, proof())
	badProto["X-Forwarded-Proto"] = []string{"ftp"}
	twoProtos := forwarded("DPoP "+bound, proof())
	twoProtos["X-Forwarded-Proto"] = []string{"https", "https"}
	wss := forwarded("DPoP "+bound, proof())
	wss["X-Forwarded-Proto"] = []string{"wss"}
	bearerBadProto := forwarded("Bearer " + unbound)
	bearerBadProto["X-Forwarded-Proto"] = []string{"https, http"}
	envoy := map[string][]string{"Authorization": {"DPoP " + bound}, "X-Forwarded-Host": {"api.example"},
		"DPoP": {c.Proof(t, "DELETE", "https://api.example/api/x", dpoptest.WithAccessToken(bound))}}

	for _, tc := range []struct {
		name, method, path string
		hdr                map[string][]string
		status             int
		code               string // error in the DPoP challenge; "" for 200
	}{
		{"case=valid", "GET", DefaultPath, forwarded("DPoP "+bound, proof()), 200, ""},
		{"case=htu host case and default port", "GET", DefaultPath, forwarded("DPoP "+bound, c.Proof(t, "GET", "https://API.example:443/api/orders/42?other#f", dpoptest.WithAccessToken(bound))), 200, ""},
		{"case=X-Forwarded-Proto http", "GET", DefaultPath, withProto, 200, ""},
		{"case=envoy mode", "DELETE", "/forward-auth/envoy/api/x?y=1", envoy, 200, ""},
		{"case=bound token as Bearer", "GET", DefaultPath, forwarded("Bearer " + bound), 401, "invalid_token"},
		{"case=unbound token under DPoP", "GET", DefaultPath, forwarded("DPoP "+unbound, c.Proof(t, "GET", orderURL, dpoptest.WithAccessToken(unbound))), 401, "invalid_token"},
		{"case=foreign confirmation", "GET", DefaultPath, forwarded("Bearer " + foreignCnf), 401, ""},
		{"case=API key under DPoP", "GET", DefaultPath, forwarded("DPoP "+e.apiKey, proof()), 400, "invalid_request"},
		{"case=proof by another key", "GET", DefaultPath, forwarded("DPoP "+bound, other.Proof(t, "GET", orderURL, dpoptest.WithAccessToken(bound))), 401, dpop.CodeInvalidProof},
		{"case=wrong htm", "GET", DefaultPath, forwarded("DPoP "+bound, c.Proof(t, "POST", orderURL, dpoptest.WithAccessToken(bound))), 401, dpop.CodeInvalidProof},
		{"case=wrong htu host", "GET", DefaultPath, forwarded("DPoP "+bound, c.Proof(t, "GET", "https://other.example/api/orders/42", dpoptest.WithAccessToken(bound))), 401, dpop.CodeInvalidProof},
		{"case=wrong htu path", "GET", DefaultPath, forwarded("DPoP "+bound, c.Proof(t, "GET", "https://api.example/api/orders/43", dpoptest.WithAccessToken(bound))), 401, dpop.CodeInvalidProof},
		{"case=htu of the forward-auth endpoint", "GET", DefaultPath, forwarded("DPoP "+bound, c.Proof(t, "GET", srv.URL+DefaultPath, dpoptest.WithAccessToken(bound))), 401, dpop.CodeInvalidProof},
		{"case=no ath", "GET", DefaultPath, forwarded("DPoP "+bound, c.Proof(t, "GET", orderURL)), 401, dpop.CodeInvalidProof},
		{"case=replayed", "GET", DefaultPath, forwarded("DPoP "+bound, replayed), 401, dpop.CodeInvalidProof},
		{"case=no proof", "GET", DefaultPath, forwarded("DPoP " + bound), 400, "invalid_request"},
		{"case=two proofs", "GET", DefaultPath, forwarded("DPoP "+bound, proof(), proof()), 400, "invalid_request"},
		{"case=oversized proof", "GET", DefaultPath, forwarded("DPoP "+bound, strings.Repeat("A", dpop.MaxProofBytes+1)), 400, "invalid_request"},
		{"case=garbage proof", "GET", DefaultPath, forwarded("DPoP "+bound, "garbage"), 400, "invalid_request"},
		{"case=unclear X-Forwarded-Proto", "GET", DefaultPath, badProto, 401, dpop.CodeInvalidProof},
		{"case=repeated X-Forwarded-Proto", "GET", DefaultPath, twoProtos, 401, dpop.CodeInvalidProof},
		{"case=X-Forwarded-Proto wss", "GET", DefaultPath, wss, 200, ""},
		{"case=bearer with unclear X-Forwarded-Proto", "GET", DefaultPath, bearerBadProto, 200, ""},
		{"case=wrong nonce", "GET", DefaultPath, forwarded("DPoP "+bound, proof(dpoptest.WithNonce("stale"))), 401, dpop.CodeUseNonce},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, srv, tc.method, tc.path, tc.hdr)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%q)", res.StatusCode, tc.status, res.Header.Values("WWW-Authenticate"))
			}
			if tc.code == "" {
				return
			}
			ch := res.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `error="`+tc.code+`"`) || !strings.Contains(ch, `algs="ES256`) {
				t.Fatalf("challenge %q, want DPoP with error %s", ch, tc.code)
			}
			if tc.code == dpop.CodeUseNonce && res.Header.Get("DPoP-Nonce") == "" {
				t.Fatal("use_dpop_nonce without DPoP-Nonce")
			}
		})
	}
}

// TestForwardAuthDPoPProofOnceUnderConcurrency releases N subrequests
// carrying the same proof together: the Postgres INSERT decides, exactly
// one passes, the rest are refused cleanly (no 5xx).
func TestForwardAuthDPoPProofOnceUnderConcurrency(t *testing.T) {
	e := newEnv(t, handlerRules, nil)
	srv := serve(t, e)
	c := dpoptest.NewES256(t)
	bound := e.mint(t, "at+jwt", jwt.MapClaims{"cnf": map[string]any{"jkt": c.JKT(t)}})
	hdr := forwarded("DPoP "+bound, c.Proof(t, "GET", orderURL, dpoptest.WithAccessToken(bound)))
	const n = 20
	statuses := storagetest.Together(n, func(int) int { return do(t, srv, "GET", DefaultPath, hdr).StatusCode })
	if ok := storagetest.Count(statuses, func(s int) bool { return s == http.StatusOK }); ok != 1 {
		t.Fatalf("%d accepted, want exactly 1: %v", ok, statuses)
	}
	if refused := storagetest.Count(statuses, func(s int) bool { return s == http.StatusUnauthorized }); refused != n-1 {
		t.Fatalf("want %d clean 401s: %v", n-1, statuses)
	}
}

// TestForwardAuthDPoPNonceEverywhere: with the nonce required at resource
// endpoints too, a proof without it gets 401 use_dpop_nonce and the nonce.
func TestForwardAuthDPoPNonceEverywhere(t *testing.T) {
	secret := []byte("forward-auth-nonce-key-0123456789-0123")
	var proofs *dpop.Verifier
	e := newEnv(t, handlerRules, func(cfg *Config) {
		v, err := dpop.New(dpop.Config{Store: cfg.Notifier.(dpop.ReplayStore), NonceKeys: [][]byte{secret}, Nonce: dpop.NonceEverywhere})
		if err != nil {
			t.Fatal(err)
		}
		cfg.DPoP, proofs = v, v
	})
	srv := serve(t, e)
	c := dpoptest.NewES256(t)
	bound := e.mint(t, "at+jwt", jwt.MapClaims{"cnf": map[string]any{"jkt": c.JKT(t)}})
	res := do(t, srv, "GET", DefaultPath, forwarded("DPoP "+bound, c.Proof(t, "GET", orderURL, dpoptest.WithAccessToken(bound))))
	nonce := res.Header.Get("DPoP-Nonce")
	if res.StatusCode != http.StatusUnauthorized || nonce == "" || !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("without nonce: %d %q %q", res.StatusCode, res.Header.Get("WWW-Authenticate"), nonce)
	}
	if nonce != proofs.Nonce() {
		t.Fatal("the answer's nonce is not the verifier's")
	}
	res = do(t, srv, "GET", DefaultPath, forwarded("DPoP "+bound, c.Proof(t, "GET", orderURL, dpoptest.WithAccessToken(bound), dpoptest.WithNonce(nonce))))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("with nonce: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
	}
}
