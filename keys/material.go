package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v3"

	"github.com/bulwark-auth/bulwark/storage"
)

// ErrKeyMaterial is wrapped when a stored key cannot be opened, parsed or
// does not match its row (wrong master secret, corrupted or swapped data).
// Messages never include key bytes.
var ErrKeyMaterial = errors.New("keys: unusable key material")

// newKID returns 16 random bytes, base64url without padding: unguessable,
// URL- and header-safe, and unrelated to the key so it reveals nothing.
func newKID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("keys: kid: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// generate creates a fresh private key for alg.
func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		return rsa.GenerateKey(rand.Reader, RSABits)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
}

// checkKeyType verifies that key is of the type and size alg demands, so a
// tampered row cannot downgrade RS256 to a small modulus or swap curves.
func checkKeyType(alg string, pub crypto.PublicKey) error {
	switch alg {
	case ES256:
		if k, ok := pub.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P256() {
			return nil
		}
	case RS256:
		if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() >= RSABits {
			return nil
		}
	case EdDSA:
		if _, ok := pub.(ed25519.PublicKey); ok {
			return nil
		}
	}
	return fmt.Errorf("%w: key type %T does not fit %s", ErrKeyMaterial, pub, alg)
}

// newSigningKey generates a key for alg and returns the storage row (private
// key sealed as PKCS#8 DER with the kid as AAD) and the parsed private JWK.
func newSigningKey(sealer Sealer, alg string) (*storage.SigningKey, *jose.JSONWebKey, error) {
	priv, err := generate(alg)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: generate %s: %w", alg, err)
	}
	kid, err := newKID()
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: encode %s key: %w", alg, err)
	}
	sealed, err := sealer.Seal(der, []byte(kid))
	clear(der)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: seal %s key: %w", alg, err)
	}
	pubJWK := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
	pubJSON, err := pubJWK.MarshalJSON()
	if err != nil {
		return nil, nil, fmt.Errorf("keys: encode public %s key: %w", alg, err)
	}
	row := &storage.SigningKey{KID: kid, Algorithm: alg, PublicJWK: pubJSON, SealedPrivate: sealed}
	return row, &jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg, Use: "sig"}, nil
}

// parsePublic decodes a row's public JWK and checks that it is public and
// agrees with the row's kid and algorithm.
func parsePublic(k *storage.SigningKey) (*jose.JSONWebKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(k.PublicJWK); err != nil {
		return nil, fmt.Errorf("%w: kid %s: public JWK does not parse", ErrKeyMaterial, k.KID)
	}
	if !jwk.IsPublic() || !jwk.Valid() {
		return nil, fmt.Errorf("%w: kid %s: public JWK is not a valid public key", ErrKeyMaterial, k.KID)
	}
	if jwk.KeyID != k.KID || jwk.Algorithm != k.Algorithm {
		return nil, fmt.Errorf("%w: kid %s: public JWK kid/alg disagree with the row", ErrKeyMaterial, k.KID)
	}
	if err := checkKeyType(k.Algorithm, jwk.Key); err != nil {
		return nil, fmt.Errorf("kid %s: %w", k.KID, err)
	}
	jwk.Use = "sig"
	return &jwk, nil
}

// openPrivate unseals a row's private key and checks that it belongs to pub.
func openPrivate(sealer Sealer, k *storage.SigningKey, pub *jose.JSONWebKey) (*jose.JSONWebKey, error) {
	der, err := sealer.Open(k.SealedPrivate, []byte(k.KID))
	if err != nil {
		return nil, fmt.Errorf("%w: kid %s: cannot unseal private key: %w", ErrKeyMaterial, k.KID, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("%w: kid %s: private key is not PKCS#8", ErrKeyMaterial, k.KID)
	}
	priv, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: kid %s: private key cannot sign", ErrKeyMaterial, k.KID)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if eq, ok := priv.Public().(equaler); !ok || !eq.Equal(pub.Key) {
		return nil, fmt.Errorf("%w: kid %s: private key does not match the public JWK", ErrKeyMaterial, k.KID)
	}
	return &jose.JSONWebKey{Key: priv, KeyID: k.KID, Algorithm: k.Algorithm, Use: "sig"}, nil
}
