package keys_test

// FuzzSignerValidate throws arbitrary strings and mutated real tokens at
// Signer.Validate and Signer.Decode:
//
//	go test -run '^$' -fuzz FuzzSignerValidate -fuzztime 30s ./keys/

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/keys"
)

var b64 = base64.RawURLEncoding

// signedToken is a token the ring signed, with what it says.
type signedToken struct {
	raw    string
	header map[string]any
	claims map[string]any
}

// fuzzRing is a ring over every algorithm, with tokens signed by an active
// key, by a key since retired (still valid), by a key since revoked and
// expired ones (both invalid).
type fuzzRing struct {
	signers []*keys.Signer
	// legit tokens must validate; nothing else may.
	legit []signedToken
	// dead were signed by the ring but must fail (revoked key, expired).
	dead []string
	// kids of every key the ring ever had, for kid-swapping seeds.
	kids []string
	// pubs are public keys in the encodings an alg-confusion attack would
	// use as an HMAC secret.
	pubs [][]byte
}

func newFuzzRing(tb testing.TB) *fuzzRing {
	tb.Helper()
	ctx := context.Background()
	e := newEnv()
	algs := []string{keys.ES256, keys.RS256, keys.EdDSA}
	r := e.ring(tb, e.config(tb, algs...))
	if err := r.Bootstrap(ctx); err != nil {
		tb.Fatal(err)
	}
	fr := &fuzzRing{}
	for _, alg := range algs {
		fr.signers = append(fr.signers, r.Signer(alg))
	}
	n := 0
	sign := func(alg string, exp time.Time, typ string) string {
		n++
		h := jwt.NewHeaders()
		if typ != "" {
			h.Extra["typ"] = typ
		}
		// fosite checks exp against the real clock, not the ring's.
		tok, _, err := r.Signer(alg).Generate(ctx, jwt.MapClaims{"sub": "alice", "jti": fmt.Sprintf("jti-%d", n), "exp": exp.Unix()}, h)
		if err != nil {
			tb.Fatal(err)
		}
		return tok
	}
	later := time.Now().Add(365 * 24 * time.Hour)
	var legit []string
	for _, alg := range []string{keys.RS256, keys.EdDSA} {
		legit = append(legit, sign(alg, later, ""), sign(alg, later, "at+jwt"))
	}
	// Retire the RS256 key: its tokens stay valid.
	if err := r.Rotate(ctx, keys.RS256, "fuzz"); err != nil {
		tb.Fatal(err)
	}
	// Revoke the ES256 key: its tokens die.
	fr.dead = []string{sign(keys.ES256, later, ""), sign(keys.ES256, later, "at+jwt")}
	if err := r.Revoke(ctx, kidOf(tb, fr.dead[0]), "fuzz"); err != nil {
		tb.Fatal(err)
	}
	legit = append(legit, sign(keys.ES256, later, ""), sign(keys.ES256, later, "at+jwt"), sign(keys.RS256, later, "at+jwt"), sign(keys.EdDSA, later, "at+jwt"))
	fr.dead = append(fr.dead, sign(keys.ES256, time.Now().Add(-time.Hour), ""), sign(keys.EdDSA, time.Now().Add(-time.Hour), ""))

	for _, tok := range legit {
		st := signedToken{raw: tok, header: map[string]any{}, claims: map[string]any{}}
		parts := strings.Split(tok, ".")
		for i, dst := range []*map[string]any{&st.header, &st.claims} {
			raw, err := b64.DecodeString(parts[i])
			if err != nil {
				tb.Fatal(err)
			}
			if err := json.Unmarshal(raw, dst); err != nil {
				tb.Fatal(err)
			}
		}
		fr.legit = append(fr.legit, st)
		if _, err := fr.signers[0].Validate(ctx, tok); err != nil {
			tb.Fatalf("control: a token the ring signed does not validate: %v", err)
		}
	}
	for _, tok := range fr.dead {
		if _, err := fr.signers[0].Validate(ctx, tok); err == nil {
			tb.Fatal("control: a revoked or expired token validates")
		}
	}
	for _, k := range e.rows(tb) {
		fr.kids = append(fr.kids, k.KID)
		// Revoked keys are no longer in the ring; their kids still seed.
		if pub, ok := r.VerificationKey(k.KID); ok {
			j, err := json.Marshal(pub)
			if err != nil {
				tb.Fatal(err)
			}
			fr.pubs = append(fr.pubs, j)
			if der, err := x509.MarshalPKIXPublicKey(pub.Key); err == nil {
				fr.pubs = append(fr.pubs, der, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
			}
		}
	}
	return fr
}

func kidOf(tb testing.TB, tok string) string {
	tb.Helper()
	raw, err := b64.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		tb.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		tb.Fatal(err)
	}
	kid, _ := h["kid"].(string)
	return kid
}

// seeds are the mutations an attacker would try first.
func (fr *fuzzRing) seeds() []string {
	var out []string
	all := append([]string{}, fr.dead...)
	for _, l := range fr.legit {
		all = append(all, l.raw)
	}
	for _, tok := range all {
		p := strings.Split(tok, ".")
		out = append(out, tok,
			p[1]+"."+p[0]+"."+p[2], p[0]+"."+p[2]+"."+p[1], p[0]+"."+p[1]+".", p[0]+"."+p[1], tok+".", tok+"."+p[2],
			p[0]+"."+p[1]+"."+p[2][:len(p[2])/2], strings.ToLower(tok), " "+tok+"\n", tok+"==",
		)
		for _, i := range []int{0, 5, len(p[0]) - 1, len(p[0]) + 3, len(p[0]) + len(p[1]), len(tok) - 1} {
			for _, bit := range []byte{0x01, 0x02, 0x20} {
				b := []byte(tok)
				b[i] ^= bit
				out = append(out, string(b))
			}
		}
		hdr := map[string]any{}
		raw, _ := b64.DecodeString(p[0])
		_ = json.Unmarshal(raw, &hdr)
		kid, _ := hdr["kid"].(string)
		claims, _ := b64.DecodeString(p[1])
		forged := b64.EncodeToString([]byte(strings.Replace(string(claims), `"alice"`, `"admin"`, 1)))
		out = append(out, p[0]+"."+forged+"."+p[2])
		withHeader := func(h map[string]any) string {
			j, _ := json.Marshal(h)
			return b64.EncodeToString(j)
		}
		for _, alg := range []string{"none", "None", "NONE", "HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "ES384", "EdDSA", "es256", ""} {
			h := map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}
			hh := withHeader(h)
			out = append(out, hh+"."+p[1]+".", hh+"."+p[1]+"."+p[2])
			if strings.HasPrefix(alg, "HS") {
				// The classic confusion: the public key as an HMAC secret.
				for _, secret := range append(fr.pubs, []byte(kid)) {
					mac := hmac.New(sha256.New, secret)
					mac.Write([]byte(hh + "." + p[1]))
					out = append(out, hh+"."+p[1]+"."+b64.EncodeToString(mac.Sum(nil)))
				}
			}
		}
		for _, other := range append(fr.kids, "", "../"+kid, kid+" ", strings.ToUpper(kid)) {
			h := map[string]any{}
			for k, v := range hdr {
				h[k] = v
			}
			h["kid"] = other
			out = append(out, withHeader(h)+"."+p[1]+"."+p[2])
		}
		for _, extra := range []string{`,"kid":"x"`, `,"crit":["exp"]`, `,"jku":"https://evil.example/jwks"`, `,"b64":false`, `,"zip":"DEF"`} {
			out = append(out, b64.EncodeToString(append(raw[:len(raw)-1:len(raw)-1], []byte(extra+"}")...))+"."+p[1]+"."+p[2])
		}
		// Duplicate kid: encoding/json keeps the last.
		out = append(out, b64.EncodeToString([]byte(`{"kid":"evil",`+string(raw[1:])))+"."+p[1]+"."+p[2])
		// JWS JSON serialisation, which go-jose also parses.
		flat, _ := json.Marshal(map[string]any{"protected": p[0], "payload": p[1], "signature": p[2]})
		out = append(out, string(flat))
		flatHdr, _ := json.Marshal(map[string]any{"protected": p[0], "payload": p[1], "signature": p[2], "header": map[string]any{"kid": "evil"}})
		out = append(out, string(flatHdr))
		general, _ := json.Marshal(map[string]any{"payload": p[1], "signatures": []any{map[string]any{"protected": p[0], "signature": p[2]}}})
		out = append(out, string(general))
	}
	return append(out, "", ".", "..", "...", "a.b.c", "e30.e30.", "e30.e30.e30", "{}", `{"payload":""}`, "\x00", "null.null.null")
}

// FuzzSignerValidate: Validate and Decode never panic, and accept nothing
// but a token the ring signed: what an accepted input says (header and
// claims) is exactly what one of the ring's tokens says, and its signed
// bytes (header, payload, signature, decoded) are that token's.
func FuzzSignerValidate(f *testing.F) {
	fr := newFuzzRing(f)
	for _, s := range fr.seeds() {
		f.Add(s)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, tok string) {
		for _, l := range fr.legit {
			if tok == l.raw {
				for _, s := range fr.signers {
					if _, err := s.Validate(ctx, tok); err != nil {
						t.Fatalf("a token the ring signed is rejected: %v", err)
					}
				}
				return
			}
		}
		for _, s := range fr.signers {
			decoded, derr := s.Decode(ctx, tok)
			sig, verr := s.Validate(ctx, tok)
			if verr == nil && derr != nil {
				t.Fatalf("Validate accepts what Decode rejects (%v): %q", derr, tok)
			}
			if derr != nil {
				continue
			}
			l, ok := fr.match(decoded)
			if !ok {
				t.Fatalf("accepted a token the ring never signed: %q (header %v, claims %v)", tok, decoded.Header, decoded.Claims)
			}
			if c, ok := canonical(tok); !ok || c != l.raw {
				t.Fatalf("accepted %q, whose signed bytes differ from the ring's token %q", tok, l.raw)
			}
			if verr == nil && !strings.Contains(tok, sig) {
				t.Fatalf("Validate returned a signature that is not part of the input: %q", tok)
			}
		}
	})
}

// match finds the ring's token whose header and claims equal decoded's.
func (fr *fuzzRing) match(decoded *jwt.Token) (signedToken, bool) {
	if decoded == nil {
		return signedToken{}, false
	}
	claims := normalise(decoded.Claims)
	header := normalise(decoded.Header)
	for _, l := range fr.legit {
		if reflect.DeepEqual(claims, normalise(l.claims)) && reflect.DeepEqual(header, normalise(l.header)) {
			return l, true
		}
	}
	return signedToken{}, false
}

// normalise round-trips v through JSON so numbers and maps compare alike.
func normalise(v any) any {
	j, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("unmarshalable %T", v)
	}
	var out any
	_ = json.Unmarshal(j, &out)
	return out
}

// canonical re-encodes the three parts of a compact or JSON-serialised JWS
// as canonical compact form, decoding leniently the way go-jose does
// (whitespace ignored, trailing '=' allowed, unused low bits ignored).
// Two inputs with the same canonical form carry the same signed bytes.
func canonical(tok string) (string, bool) {
	tok = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, tok)
	var parts []string
	if strings.HasPrefix(tok, "{") {
		var js struct {
			Protected, Payload, Signature string
			Signatures                    []struct{ Protected, Signature string }
		}
		if json.Unmarshal([]byte(tok), &js) != nil {
			return "", false
		}
		if len(js.Signatures) == 1 {
			js.Protected, js.Signature = js.Signatures[0].Protected, js.Signatures[0].Signature
		}
		parts = []string{js.Protected, js.Payload, js.Signature}
	} else {
		parts = strings.Split(tok, ".")
		if len(parts) != 3 {
			return "", false
		}
	}
	for i, p := range parts {
		raw, err := b64.DecodeString(strings.TrimRight(p, "="))
		if err != nil {
			return "", false
		}
		parts[i] = b64.EncodeToString(raw)
	}
	return strings.Join(parts, "."), true
}
