package dpop

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ReplayStore remembers the proofs already used, for every replica at once
// (storage.DPoPProofStore).
type ReplayStore interface {
	// UseDPoPProof records key until expires and reports whether this call
	// was the first to do so; of concurrent callers exactly one gets true.
	UseDPoPProof(ctx context.Context, key string, expires time.Time) (first bool, err error)
}

// Limits and defaults.
const (
	// MaxProofBytes bounds the DPoP header: an RSA-4096 jwk and the claims
	// fit in well under half of it.
	MaxProofBytes = 8 << 10
	// DefaultWindow is how far iat may lie from the server's clock, either
	// way.
	DefaultWindow = 60 * time.Second
	// MaxWindow bounds Window: a proof is a one-time credential, not a
	// session.
	MaxWindow = 10 * time.Minute
	// DefaultNoncePeriod is how often the nonce changes; a nonce stays
	// valid for between one and two periods.
	DefaultNoncePeriod = 5 * time.Minute
	// replayMargin keeps a used jti a little past the end of its window,
	// so the janitor of a replica whose clock runs ahead does not forget
	// it while another replica would still accept the proof.
	replayMargin = time.Minute
	maxJTIBytes  = 256
	minRSABits   = 2048
	maxRSABits   = 8192
)

// algorithms is the allow-list, in the order discovery advertises it.
var algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.PS256, jose.RS256}

// Algorithms returns the accepted proof algorithms
// (dpop_signing_alg_values_supported).
func Algorithms() []string {
	out := make([]string, len(algorithms))
	for i, a := range algorithms {
		out[i] = string(a)
	}
	return out
}

// Config is what a Verifier needs.
type Config struct {
	// Store remembers used proofs (jti) for every replica.
	Store ReplayStore
	// NonceKeys key the nonce HMAC: the first issues nonces, all verify
	// them. Each must be at least 32 bytes; every replica must be given
	// the same keys (derive them from the master secret).
	NonceKeys [][]byte
	// Nonce says where a nonce is required; the zero value is
	// NonceTokenEndpoint.
	Nonce NoncePolicy
	// Window is how far iat may lie from now, either way; zero means
	// DefaultWindow. At most MaxWindow.
	Window time.Duration
	// NoncePeriod is how often the nonce changes (whole seconds); zero
	// means DefaultNoncePeriod.
	NoncePeriod time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks proofs and issues nonces. It is safe for concurrent use.
type Verifier struct {
	store       ReplayStore
	nonceKeys   [][]byte
	policy      NoncePolicy
	window      time.Duration
	noncePeriod time.Duration
	now         func() time.Time
}

// New validates cfg and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	var problems []error
	if cfg.Store == nil {
		problems = append(problems, errors.New("a replay store is required"))
	}
	if len(cfg.NonceKeys) == 0 {
		problems = append(problems, errors.New("at least one nonce key is required"))
	}
	for i, k := range cfg.NonceKeys {
		if len(k) < 32 {
			problems = append(problems, fmt.Errorf("nonce key #%d must be at least 32 bytes", i+1))
		}
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Window < time.Second || cfg.Window > MaxWindow {
		problems = append(problems, fmt.Errorf("the proof window must be between 1s and %s", MaxWindow))
	}
	if cfg.NoncePeriod == 0 {
		cfg.NoncePeriod = DefaultNoncePeriod
	}
	if cfg.NoncePeriod < time.Second || cfg.NoncePeriod%time.Second != 0 {
		problems = append(problems, errors.New("the nonce period must be a positive number of whole seconds"))
	}
	if cfg.Nonce < NonceTokenEndpoint || cfg.Nonce > NonceNever {
		problems = append(problems, errors.New("unknown nonce policy"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("dpop: invalid config: %w", errors.Join(problems...))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{store: cfg.Store, nonceKeys: cfg.NonceKeys, policy: cfg.Nonce, window: cfg.Window,
		noncePeriod: cfg.NoncePeriod, now: cfg.Now}, nil
}

// Window is how far a proof's iat may lie from now.
func (v *Verifier) Window() time.Duration { return v.window }

// NoncePolicy is where nonces are required.
func (v *Verifier) NoncePolicy() NoncePolicy { return v.policy }

// Check describes the request a proof must match.
type Check struct {
	// Method is the request's method (htm).
	Method string
	// URL is the request's URL (htu), built by the caller from trusted
	// configuration: the issuer plus the endpoint's path at the
	// authorization server, the forwarded origin at forward-auth.
	URL string
	// AccessToken is the token the proof accompanies at a resource
	// endpoint (ath must be its hash); empty at the token endpoint.
	AccessToken string
}

// Proof is what a verified proof establishes.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key,
	// base64url: the value of cnf.jkt in tokens bound to it.
	JKT string
	// Algorithm is the proof's alg.
	Algorithm string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
}

// claims are the proof's payload (RFC 9449 §4.2).
type claims struct {
	JTI   *string         `json:"jti"`
	HTM   *string         `json:"htm"`
	HTU   *string         `json:"htu"`
	IAT   json.RawMessage `json:"iat"`
	ATH   *string         `json:"ath"`
	Nonce *string         `json:"nonce"`
}

// Verify checks the values of the request's DPoP header (all of them:
// r.Header.Values("DPoP")) against c, in the order of RFC 9449 §4.3, and
// last records the proof's jti so that it is accepted once across every
// replica. A refused proof is an *Error; any other error is the store's
// (unavailable), and nothing was decided.
func (v *Verifier) Verify(ctx context.Context, header []string, c Check) (*Proof, error) {
	switch {
	case len(header) == 0:
		return nil, malformed(ReasonMissing)
	case len(header) > 1 || len(header[0]) > MaxProofBytes:
		return nil, malformed(ReasonHeader)
	}
	raw := header[0]
	jws, err := jose.ParseSignedCompact(raw, algorithms)
	if err != nil {
		return nil, parseFailure(raw)
	}
	if len(jws.Signatures) != 1 {
		return nil, malformed(ReasonJWS)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "dpop+jwt") {
		return nil, refuse(ReasonTyp)
	}
	alg := jose.SignatureAlgorithm(h.Algorithm)
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() || !keyFits(alg, jwk.Key) {
		return nil, refuse(ReasonJWK)
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return nil, refuse(ReasonSignature)
	}
	var cl claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&cl); err != nil || cl.JTI == nil || cl.HTM == nil || cl.HTU == nil ||
		*cl.JTI == "" || len(*cl.JTI) > maxJTIBytes {
		return nil, refuse(ReasonClaims)
	}
	iat, ok := numericDate(cl.IAT)
	if !ok {
		return nil, refuse(ReasonClaims)
	}
	if *cl.HTM != c.Method {
		return nil, refuse(ReasonHTM)
	}
	got, ok1 := NormalizeURL(*cl.HTU)
	want, ok2 := NormalizeURL(c.URL)
	if !ok1 || !ok2 || got != want {
		return nil, refuse(ReasonHTU)
	}
	now := v.now()
	if iat.Before(now.Add(-v.window)) || iat.After(now.Add(v.window)) {
		return nil, refuse(ReasonIAT)
	}
	if c.AccessToken != "" {
		if cl.ATH == nil || subtle.ConstantTimeCompare([]byte(*cl.ATH), []byte(AccessTokenHash(c.AccessToken))) != 1 {
			return nil, refuse(ReasonATH)
		}
	}
	if cl.Nonce != nil || v.policy.required(c.AccessToken != "") {
		if cl.Nonce == nil || !v.validNonce(*cl.Nonce) {
			return nil, &Error{Code: CodeUseNonce, Reason: ReasonNonce}
		}
	}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, refuse(ReasonJWK)
	}
	jkt := base64.RawURLEncoding.EncodeToString(sum)
	// The jti is unique per key: one client's choice of jti can never
	// collide with, and so refuse, another's.
	first, err := v.store.UseDPoPProof(ctx, "dpop\x00"+jkt+"\x00"+*cl.JTI, iat.Add(v.window+replayMargin))
	if err != nil {
		return nil, fmt.Errorf("dpop: record proof: %w", err)
	}
	if !first {
		return nil, refuse(ReasonReplay)
	}
	return &Proof{JKT: jkt, Algorithm: string(alg), IssuedAt: iat}, nil
}

// parseFailure says why go-jose refused to parse a proof. Its refusal does
// not say, so the protected header is read once more, only to choose the
// reason: an algorithm off the allow-list, or a jwk that is not a public
// key (go-jose refuses both while parsing); anything else is malformed.
func parseFailure(raw string) *Error {
	seg, _, ok := strings.Cut(raw, ".")
	if !ok {
		return malformed(ReasonJWS)
	}
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return malformed(ReasonJWS)
	}
	var h struct {
		Alg *string         `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
	}
	if json.Unmarshal(b, &h) != nil || h.Alg == nil {
		return malformed(ReasonJWS)
	}
	if !slices.Contains(algorithms, jose.SignatureAlgorithm(*h.Alg)) {
		return refuse(ReasonAlg)
	}
	if h.JWK != nil {
		// A private or symmetric key, or one go-jose cannot read at all.
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(h.JWK); err != nil || !k.IsPublic() {
			return refuse(ReasonJWK)
		}
	}
	return malformed(ReasonJWS)
}

// keyFits reports whether key is the kind of public key alg uses: a P-256
// key for ES256, Ed25519 for EdDSA, RSA of 2048 to 8192 bits for RS256 and
// PS256.
func keyFits(alg jose.SignatureAlgorithm, key any) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == jose.EdDSA && len(k) == ed25519.PublicKeySize
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		return (alg == jose.RS256 || alg == jose.PS256) && bits >= minRSABits && bits <= maxRSABits
	}
	return false
}

// numericDate reads an RFC 7519 NumericDate: a JSON number (an integer or
// a fraction), not a string holding one.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || raw[0] < '0' || raw[0] > '9' {
		return time.Time{}, false
	}
	n := json.Number(raw)
	if i, err := n.Int64(); err == nil {
		if i <= 0 {
			return time.Time{}, false
		}
		return time.Unix(i, 0), true
	}
	f, err := n.Float64()
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > math.MaxInt32*16 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// AccessTokenHash is the ath of a proof accompanying token: the base64url
// SHA-256 of its ASCII bytes (RFC 9449 §4.2).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
