package keys_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/storage"
)

func TestConfigValidation(t *testing.T) {
	e := newEnv()
	cases := []struct {
		name string
		mod  func(*keys.Config)
		want []string // substrings that must all appear
	}{
		{name: "case=defaults are valid", mod: func(*keys.Config) {}},
		{name: "case=missing dependencies reported together", mod: func(c *keys.Config) {
			c.Store, c.Locker, c.Notifier, c.Sealer = nil, nil, nil, nil
		}, want: []string{"Store is required", "Locker is required", "Notifier is required", "Sealer is required"}},
		{name: "case=unsupported and duplicate algorithms", mod: func(c *keys.Config) {
			c.Algorithms = []string{"HS256", "ES256", "ES256", "RS384"}
		}, want: []string{`"HS256" is not supported`, `"RS384" is not supported`, `"ES256" listed twice`}},
		{name: "case=lead time longer than rotation and max-age longer than lead time", mod: func(c *keys.Config) {
			c.RotationPeriod = 24 * time.Hour
			c.LeadTime = 48 * time.Hour
			c.JWKSMaxAge = 72 * time.Hour
		}, want: []string{"LeadTime (48h0m0s) must be ≤ RotationPeriod (24h0m0s)", "JWKSMaxAge (72h0m0s) must be ≤ LeadTime (48h0m0s)"}},
		{name: "case=negative durations", mod: func(c *keys.Config) {
			c.Retention = -time.Hour
			c.TickInterval = -time.Second
			c.ReloadInterval = -time.Second
		}, want: []string{"Retention must be positive", "TickInterval must be positive", "ReloadInterval must be positive"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config(t, keys.ES256)
			tc.mod(&cfg)
			r, err := keys.NewRing(context.Background(), cfg)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if r.MaxAge() != 15*time.Minute {
					t.Errorf("default MaxAge = %s, want 15m (min(48h/4, 15m))", r.MaxAge())
				}
				if got := r.Algorithms(); len(got) != 1 || got[0] != keys.ES256 || r.DefaultAlgorithm() != keys.ES256 {
					t.Errorf("Algorithms = %v", got)
				}
				return
			}
			if !errors.Is(err, keys.ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestDefaultMaxAgeFollowsLeadTime(t *testing.T) {
	e := newEnv()
	cfg := e.config(t, keys.ES256)
	cfg.RotationPeriod = 4 * time.Hour
	cfg.LeadTime = 20 * time.Minute
	r := e.ring(t, cfg)
	if r.MaxAge() != 5*time.Minute {
		t.Fatalf("MaxAge = %s, want LeadTime/4 = 5m", r.MaxAge())
	}
}

var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

func TestBootstrapKeyTypesAndJWKS(t *testing.T) {
	e := newEnv()
	r := e.ring(t, e.config(t, keys.ES256, keys.RS256, keys.EdDSA))
	ctx := context.Background()
	if _, err := r.SigningKey(keys.ES256); !errors.Is(err, keys.ErrNoActiveKey) {
		t.Fatalf("before Bootstrap: err = %v, want ErrNoActiveKey", err)
	}
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	rows := e.rows(t)
	if len(rows) != 6 {
		t.Fatalf("got %d keys, want active+next for 3 algorithms", len(rows))
	}
	body, etag := r.JWKS()
	sum := sha256.Sum256(body)
	if want := `"` + hex.EncodeToString(sum[:]) + `"`; etag != want {
		t.Errorf("ETag = %s, want quoted SHA-256 %s", etag, want)
	}
	if bytes.Contains(body, []byte(`"d"`)) || bytes.Contains(body, []byte(`"p"`)) {
		t.Errorf("JWKS contains private parameters: %s", body)
	}
	published := jwksKids(t, body)
	for _, row := range rows {
		if !kidPattern.MatchString(row.KID) {
			t.Errorf("kid %q is not 16 bytes base64url", row.KID)
		}
		pub, ok := published[row.KID]
		if !ok {
			t.Errorf("%s %s key %s not in JWKS", row.Algorithm, row.State, row.KID)
			continue
		}
		if pub.Algorithm != row.Algorithm || pub.Use != "sig" {
			t.Errorf("kid %s: alg %q use %q", row.KID, pub.Algorithm, pub.Use)
		}
		switch row.Algorithm {
		case keys.ES256:
			k, ok := pub.Key.(*ecdsa.PublicKey)
			if !ok || k.Curve != elliptic.P256() {
				t.Errorf("ES256 key is %T, want P-256", pub.Key)
			}
		case keys.RS256:
			k, ok := pub.Key.(*rsa.PublicKey)
			if !ok || k.N.BitLen() != 3072 {
				t.Errorf("RS256 key is %T, want RSA-3072", pub.Key)
			}
		case keys.EdDSA:
			if _, ok := pub.Key.(ed25519.PublicKey); !ok {
				t.Errorf("EdDSA key is %T, want Ed25519", pub.Key)
			}
		}
	}
	for _, alg := range []string{keys.ES256, keys.RS256, keys.EdDSA} {
		active := inState(rows, alg, storage.KeyActive)
		next := inState(rows, alg, storage.KeyNext)
		if len(active) != 1 || len(next) != 1 {
			t.Fatalf("%s: %d active, %d next", alg, len(active), len(next))
		}
		sk, err := r.SigningKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		if sk.KeyID != active[0].KID || sk.Algorithm != alg || sk.IsPublic() {
			t.Errorf("%s: SigningKey kid %s alg %s public %v; want private active %s", alg, sk.KeyID, sk.Algorithm, sk.IsPublic(), active[0].KID)
		}
		if want := e.clock.Now().Add(keys.DefaultRotationPeriod); !next[0].ActivateAt.Equal(want) {
			t.Errorf("%s: next activates at %s, want %s", alg, next[0].ActivateAt, want)
		}
		if _, ok := r.VerificationKey(next[0].KID); !ok {
			t.Errorf("%s: next key not a verification key", alg)
		}
	}
	if _, err := r.SigningKey("HS256"); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
		t.Errorf("SigningKey(HS256) err = %v", err)
	}
	if _, ok := r.VerificationKey("nope"); ok {
		t.Error("unknown kid verifies")
	}
	// A second Bootstrap finds the keys and changes nothing.
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if body2, etag2 := r.JWKS(); etag2 != etag || !bytes.Equal(body2, body) || len(e.rows(t)) != 6 {
		t.Error("second Bootstrap changed the ring")
	}
}

func TestPrivateKeysAreSealed(t *testing.T) {
	e := newEnv()
	cfg := e.config(t, keys.ES256, keys.RS256, keys.EdDSA)
	r := e.ring(t, cfg)
	if err := r.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	box := newBox(t)
	for _, row := range e.rows(t) {
		sealed := row.SealedPrivate
		if _, err := x509.ParsePKCS8PrivateKey(sealed); err == nil {
			t.Errorf("%s: sealed key parses as PKCS#8", row.KID)
		}
		if _, err := x509.ParsePKCS1PrivateKey(sealed); err == nil {
			t.Errorf("%s: sealed key parses as PKCS#1", row.KID)
		}
		if _, err := x509.ParseECPrivateKey(sealed); err == nil {
			t.Errorf("%s: sealed key parses as SEC1", row.KID)
		}
		der, err := box.Open(sealed, []byte(row.KID))
		if err != nil {
			t.Fatalf("%s: does not open with kid as AAD: %v", row.KID, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			t.Fatalf("%s: plaintext is not PKCS#8: %v", row.KID, err)
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if bytes.Contains(sealed, der) || bytes.Contains(sealed, pemBytes) || bytes.Contains(sealed, der[len(der)-32:]) {
			t.Errorf("%s: key material visible in sealed bytes", row.KID)
		}
		if _, err := box.Open(sealed, []byte("another-kid")); err == nil {
			t.Errorf("%s: sealed key opens under another kid", row.KID)
		}
		// Nothing of the private key reaches the log either.
		jwk := jose.JSONWebKey{Key: priv}
		js, _ := jwk.MarshalJSON()
		var d struct {
			D string `json:"d"`
		}
		if err := json.Unmarshal(js, &d); err != nil || d.D == "" {
			t.Fatalf("cannot extract d: %v", err)
		}
		if strings.Contains(e.log.String(), d.D) || strings.Contains(e.log.String(), base64.StdEncoding.EncodeToString(der)) {
			t.Errorf("%s: private key material in the log", row.KID)
		}
	}
	if !strings.Contains(e.log.String(), "signing key transition") {
		t.Error("no transition log lines")
	}
}

func TestLoadSurvivesUnusableKey(t *testing.T) {
	e := newEnv()
	ctx := context.Background()
	r := e.ring(t, e.config(t, keys.ES256, keys.EdDSA))
	if err := r.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	rows := e.rows(t)
	es := inState(rows, keys.ES256, storage.KeyActive)[0]
	ed := inState(rows, keys.EdDSA, storage.KeyActive)[0]
	// Move the EdDSA key's sealed bytes onto the ES256 row: the AAD (kid)
	// no longer matches, so it must not open.
	if err := e.store.ResealSigningKey(ctx, es.KID, ed.SealedPrivate); err != nil {
		t.Fatal(err)
	}
	fresh := e.ring(t, e.config(t, keys.ES256, keys.EdDSA))
	err := fresh.Load(ctx)
	if !errors.Is(err, keys.ErrKeyMaterial) {
		t.Fatalf("Load err = %v, want ErrKeyMaterial", err)
	}
	if strings.Contains(err.Error(), base64.RawURLEncoding.EncodeToString(ed.SealedPrivate)) {
		t.Error("error leaks sealed bytes")
	}
	if _, err := fresh.SigningKey(keys.ES256); !errors.Is(err, keys.ErrNoActiveKey) {
		t.Errorf("ES256 signing with an unopenable key: err = %v", err)
	}
	if _, err := fresh.SigningKey(keys.EdDSA); err != nil {
		t.Errorf("EdDSA should still sign: %v", err)
	}
	if _, ok := fresh.VerificationKey(es.KID); !ok {
		t.Error("public part of the unopenable key should stay published")
	}
	// The ring that created the key keeps it: a kid's material never
	// changes, so a later bad row does not take a working key away.
	if err := r.Load(ctx); err != nil {
		t.Fatalf("Load with cached key: %v", err)
	}
	if _, err := r.SigningKey(keys.ES256); err != nil {
		t.Errorf("cached ES256 key lost: %v", err)
	}
}

func TestReseal(t *testing.T) {
	e := newEnv()
	ctx := context.Background()
	cfg := e.config(t, keys.ES256, keys.EdDSA)
	cfg.Sealer = newBox(t, secretA)
	if err := e.ring(t, cfg).Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	before := e.rows(t)

	cfg.Sealer = newBox(t, secretB, secretA) // B is new, A still opens
	r := e.ring(t, cfg)
	n, err := r.Reseal(ctx)
	if err != nil || n != len(before) {
		t.Fatalf("Reseal = %d, %v; want %d", n, err, len(before))
	}
	if n, err := r.Reseal(ctx); err != nil || n != 0 {
		t.Fatalf("second Reseal = %d, %v; want 0", n, err)
	}
	// Secret A can now be dropped.
	cfg.Sealer = newBox(t, secretB)
	onlyB := e.ring(t, cfg)
	if err := onlyB.Load(ctx); err != nil {
		t.Fatalf("Load with only the new secret: %v", err)
	}
	for _, alg := range []string{keys.ES256, keys.EdDSA} {
		if _, err := onlyB.SigningKey(alg); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}
	old := map[string][]byte{}
	for _, row := range before {
		old[row.KID] = row.SealedPrivate
	}
	for _, row := range e.rows(t) {
		if bytes.Equal(row.SealedPrivate, old[row.KID]) {
			t.Errorf("%s not resealed", row.KID)
		}
	}
}
