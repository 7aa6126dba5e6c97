package keys_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/keys"
)

func headerOf(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSignerRoundTrip(t *testing.T) {
	e := newEnv()
	ctx := context.Background()
	algs := []string{keys.ES256, keys.RS256, keys.EdDSA}
	r := e.ring(t, e.config(t, algs...))
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	for _, alg := range algs {
		t.Run("case="+alg, func(t *testing.T) {
			var s jwt.Signer = r.Signer(alg)
			active, _ := r.SigningKey(alg)
			// A caller's header cannot pick the key or algorithm.
			h := &jwt.Headers{Extra: map[string]any{"typ": "at+jwt", "kid": "attacker", "jku": "https://evil.example"}}
			token, sig, err := s.Generate(ctx, jwt.MapClaims{"sub": "alice", "n": 1}, h)
			if err != nil {
				t.Fatal(err)
			}
			hdr := headerOf(t, token)
			if hdr["kid"] != active.KeyID || hdr["alg"] != alg || hdr["typ"] != "at+jwt" || hdr["jku"] != nil {
				t.Fatalf("header = %v, want kid %s alg %s typ at+jwt", hdr, active.KeyID, alg)
			}
			got, err := s.Validate(ctx, token)
			if err != nil || got != sig {
				t.Fatalf("Validate = %q, %v; want %q", got, err, sig)
			}
			dec, err := s.Decode(ctx, token)
			if err != nil || !dec.Valid() || dec.Claims["sub"] != "alice" {
				t.Fatalf("Decode = %+v, %v", dec, err)
			}
			if gs, _ := s.GetSignature(ctx, token); gs != sig {
				t.Error("GetSignature differs from Generate's signature")
			}
			sum := sha256.Sum256([]byte("x"))
			if hs, _ := s.Hash(ctx, []byte("x")); string(hs) != string(sum[:]) || s.GetSigningMethodLength(ctx) != 32 {
				t.Error("Hash/GetSigningMethodLength differ from fosite's DefaultSigner")
			}
			// Tokens signed by another of the ring's algorithms verify too,
			// so changing the default algorithm does not void live tokens.
			other := r.Signer(algs[(indexOf(algs, alg)+1)%len(algs)])
			if _, err := other.Validate(ctx, token); err != nil {
				t.Errorf("token does not validate through another algorithm's Signer: %v", err)
			}
		})
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// foreignToken signs claims with a key the ring does not hold, claiming kid.
func foreignToken(t *testing.T, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := (&jwt.DefaultSigner{GetPrivateKey: func(context.Context) (any, error) {
		return &jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(alg)}, nil
	}}).Generate(context.Background(), claims, jwt.NewHeaders())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSignerRejects(t *testing.T) {
	e := newEnv()
	ctx := context.Background()
	r := e.ring(t, e.config(t, keys.ES256, keys.EdDSA))
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	s := r.Signer(keys.ES256)
	good, _, err := s.Generate(ctx, jwt.MapClaims{"sub": "alice"}, jwt.NewHeaders())
	if err != nil {
		t.Fatal(err)
	}
	esKID := headerOf(t, good)["kid"].(string)
	edKey, _ := r.SigningKey(keys.EdDSA)
	parts := strings.Split(good, ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory"}`))
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + esKID + `"}`))
	expired, _, err := s.Generate(ctx, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}, jwt.NewHeaders())
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		token string
		flag  uint32
	}{
		{"case=payload tampered", parts[0] + "." + forged + "." + parts[2], jwt.ValidationErrorSignatureInvalid},
		{"case=alg none", noneHeader + "." + parts[1] + ".", jwt.ValidationErrorUnverifiable},
		{"case=no kid", foreignToken(t, jose.ES256, "", map[string]any{"sub": "x"}), jwt.ValidationErrorUnverifiable},
		{"case=unknown kid", foreignToken(t, jose.ES256, "unknown", map[string]any{"sub": "x"}), jwt.ValidationErrorUnverifiable},
		{"case=our kid, foreign key", foreignToken(t, jose.ES256, esKID, map[string]any{"sub": "x"}), jwt.ValidationErrorSignatureInvalid},
		{"case=alg differs from the key's", foreignToken(t, jose.ES256, edKey.KeyID, map[string]any{"sub": "x"}), jwt.ValidationErrorUnverifiable},
		{"case=expired", expired, jwt.ValidationErrorExpired},
		{"case=garbage", "a.b.c", jwt.ValidationErrorMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Validate(ctx, tc.token)
			var ve *jwt.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *jwt.ValidationError", err)
			}
			if !ve.Has(tc.flag) {
				t.Errorf("err = %v (flags %b), want flag %b", err, ve.Errors, tc.flag)
			}
		})
	}
	if _, err := s.Validate(ctx, good); err != nil {
		t.Fatalf("control token rejected: %v", err)
	}
}

func TestSignerAcrossRotationAndRevocation(t *testing.T) {
	e := newEnv()
	ctx := context.Background()
	cfg := e.config(t, keys.ES256)
	cfg.Retention = 24 * time.Hour
	r := e.ring(t, cfg)
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	s := r.Signer(keys.ES256)
	old, _, err := s.Generate(ctx, jwt.MapClaims{"sub": "a"}, jwt.NewHeaders())
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(keys.DefaultRotationPeriod)
	if err := r.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	newer, _, err := s.Generate(ctx, jwt.MapClaims{"sub": "b"}, jwt.NewHeaders())
	if err != nil {
		t.Fatal(err)
	}
	if headerOf(t, old)["kid"] == headerOf(t, newer)["kid"] {
		t.Fatal("Tick at ActivateAt did not rotate")
	}
	if _, err := s.Validate(ctx, old); err != nil {
		t.Fatalf("token of the retired key rejected: %v", err)
	}
	// After Retention the retired key is gone and so is its token.
	e.clock.Add(cfg.Retention)
	if err := r.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Validate(ctx, old); err == nil {
		t.Fatal("token of a deleted key still validates")
	}
	// Revocation of the active key takes effect at once.
	if err := r.Revoke(ctx, headerOf(t, newer)["kid"].(string), "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Validate(ctx, newer); err == nil {
		t.Fatal("token of a revoked key still validates")
	}
	if _, _, err := s.Generate(ctx, jwt.MapClaims{"sub": "c"}, jwt.NewHeaders()); err != nil {
		t.Fatalf("signing stopped after revocation: %v", err)
	}
}

// cachingVerifier is a resource server: it fetches the JWKS, keeps it for
// MaxAge, and verifies tokens with lestrrat-go/jwx (not the library that
// signed them).
type cachingVerifier struct {
	ring    *keys.Ring
	now     func() time.Time
	set     jwk.Set
	fetched time.Time
}

func (v *cachingVerifier) keySet(t *testing.T) jwk.Set {
	if v.set == nil || !v.now().Before(v.fetched.Add(v.ring.MaxAge())) {
		body, _ := v.ring.JWKS()
		set, err := jwk.Parse(body)
		if err != nil {
			t.Fatalf("jwx cannot parse our JWKS: %v", err)
		}
		v.set, v.fetched = set, v.now()
	}
	return v.set
}

func (v *cachingVerifier) verify(t *testing.T, token string) error {
	_, err := jwxjwt.Parse([]byte(token),
		jwxjwt.WithKeySet(v.keySet(t)),
		jwxjwt.WithValidate(true),
		jwxjwt.WithClock(jwxjwt.ClockFunc(v.now)))
	return err
}

func TestResourceServerSimulation(t *testing.T) {
	cases := []struct {
		alg      string
		rotation time.Duration
		lead     time.Duration
		duration time.Duration
		step     time.Duration
	}{
		{keys.ES256, keys.DefaultRotationPeriod, keys.DefaultLeadTime, 75 * 24 * time.Hour, 15 * time.Minute},
		{keys.EdDSA, keys.DefaultRotationPeriod, keys.DefaultLeadTime, 75 * 24 * time.Hour, 15 * time.Minute},
		{keys.RS256, 24 * time.Hour, 12 * time.Hour, 50 * time.Hour, 10 * time.Minute},
	}
	for _, tc := range cases {
		t.Run("case="+tc.alg, func(t *testing.T) {
			e := newEnv()
			ctx := context.Background()
			cfg := e.config(t, tc.alg)
			cfg.RotationPeriod, cfg.LeadTime = tc.rotation, tc.lead
			cfg.JWKSMaxAge = time.Hour
			// Tokens outlive the JWKS cache, so some of the revoked key's
			// tokens are still alive when the resource server refreshes.
			const lifetime = 2 * time.Hour
			cfg.Retention = lifetime + time.Hour
			r := e.ring(t, cfg)
			if err := r.Bootstrap(ctx); err != nil {
				t.Fatal(err)
			}
			s := r.Signer(tc.alg)
			rs := &cachingVerifier{ring: r, now: e.clock.Now}
			type live struct {
				token, kid string
				exp        time.Time
			}
			var tokens []live
			probes := map[string]string{} // kid → token without time claims, for Signer.Validate
			var lastSet jwk.Set
			var revokedKID string
			var revokedAt time.Time
			steps := int(tc.duration / tc.step)
			verified, rejectedAfterRefresh := 0, 0
			kids := map[string]bool{}
			for i := 0; i < steps; i++ {
				e.clock.Add(tc.step)
				now := e.clock.Now()
				if err := r.Tick(ctx); err != nil {
					t.Fatal(err)
				}
				switch i {
				case steps / 3:
					if err := r.Rotate(ctx, tc.alg, "admin"); err != nil {
						t.Fatal(err)
					}
				case 2 * steps / 3:
					sk, _ := r.SigningKey(tc.alg)
					revokedKID, revokedAt = sk.KeyID, now
					if err := r.Revoke(ctx, revokedKID, "admin"); err != nil {
						t.Fatal(err)
					}
					if _, err := s.Validate(ctx, probes[revokedKID]); err == nil {
						t.Fatal("Signer.Validate accepts a revoked key's token right after Revoke")
					}
				}
				tok, _, err := s.Generate(ctx, jwt.MapClaims{
					"sub": "svc", "jti": fmt.Sprint(i), "iat": now.Unix(), "exp": now.Add(lifetime).Unix(),
				}, &jwt.Headers{Extra: map[string]any{"typ": "at+jwt"}})
				if err != nil {
					t.Fatalf("step %d: sign: %v", i, err)
				}
				kid := headerOf(t, tok)["kid"].(string)
				kids[kid] = true
				if probes[kid] == "" {
					probes[kid], _, err = s.Generate(ctx, jwt.MapClaims{"sub": "probe"}, jwt.NewHeaders())
					if err != nil {
						t.Fatal(err)
					}
					if _, err := s.Validate(ctx, probes[kid]); err != nil {
						t.Fatalf("probe of active key %s rejected: %v", kid, err)
					}
				}
				tokens = append(tokens, live{tok, kid, now.Add(lifetime)})
				// A verdict only changes when the verifier's key set does, so
				// every live token is re-verified after each JWKS refresh and
				// a new token is verified at once.
				set := rs.keySet(t)
				all := set != lastSet
				lastSet = set
				kept := tokens[:0]
				for j, lt := range tokens {
					if !now.Before(lt.exp) {
						continue
					}
					kept = append(kept, lt)
					if !all && j != len(tokens)-1 {
						continue
					}
					err := rs.verify(t, lt.token)
					switch {
					case lt.kid == revokedKID && rs.fetched.After(revokedAt):
						if err == nil {
							t.Fatalf("step %d: resource server accepts revoked kid after refreshing its JWKS", i)
						}
						rejectedAfterRefresh++
					case lt.kid == revokedKID:
						// Still cached: accepted for at most MaxAge.
						if now.Sub(revokedAt) > r.MaxAge() {
							t.Fatalf("step %d: revoked key trusted beyond MaxAge", i)
						}
					case err != nil:
						t.Fatalf("step %d (%s): valid token of %s rejected by the resource server: %v", i, now, lt.kid, err)
					default:
						verified++
					}
				}
				tokens = kept
			}
			if revokedKID == "" || rejectedAfterRefresh == 0 {
				t.Fatal("the revocation was never observed by the resource server")
			}
			if len(kids) < 3 {
				t.Fatalf("only %d keys signed; rotation did not happen", len(kids))
			}
			e.audit.mu.Lock()
			for _, ev := range e.audit.events {
				if ev.Event == "signing_key.revoked" && ev.Details["kid"] != revokedKID {
					t.Errorf("unexpected revocation of %s", ev.Details["kid"])
				}
			}
			e.audit.mu.Unlock()
			t.Logf("%d verifications by jwx across %d signing keys, %d revoked-key rejections", verified, len(kids), rejectedAfterRefresh)
		})
	}
}

// TestDecodeRemembersOnlyWhatVerified: a verified token is remembered, but
// a cached verification never outlives its key (revocation applies to
// cached tokens at once) and never covers other bytes (a payload swapped
// under a remembered signature still fails).
func TestDecodeRemembersOnlyWhatVerified(t *testing.T) {
	e := newEnv()
	ctx := context.Background()
	r := e.ring(t, e.config(t, keys.ES256))
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	s := r.Signer(keys.ES256)
	exp := e.clock.Now().Add(time.Hour).Unix()
	good, _, err := s.Generate(ctx, jwt.MapClaims{"sub": "alice", "exp": exp}, jwt.NewHeaders())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // cold, then from the cache
		tok, err := s.Decode(ctx, good)
		if err != nil {
			t.Fatalf("decode %d: %v", i, err)
		}
		if tok.Claims["sub"] != "alice" || !tok.Valid() {
			t.Fatalf("decode %d: claims %v, valid %v", i, tok.Claims, tok.Valid())
		}
	}
	parts := strings.Split(good, ".")
	swapped := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","exp":`+strconv.FormatInt(exp, 10)+`}`)) + "." + parts[2]
	if _, err := s.Decode(ctx, swapped); err == nil {
		t.Fatal("a payload under a remembered signature was accepted")
	}
	if err := r.Revoke(ctx, headerOf(t, good)["kid"].(string), "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Validate(ctx, good); err == nil {
		t.Fatal("a remembered token of a revoked key still validates")
	}
}
