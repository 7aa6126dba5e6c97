package dpop

import (
	"errors"
	"strings"
)

// Error codes (RFC 9449 §5, §7.1, §8, §9).
const (
	// CodeInvalidProof: the proof is missing where required, malformed, or
	// fails a check.
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce: the proof lacks the server's current nonce.
	CodeUseNonce = "use_dpop_nonce"
)

// Reasons name the check a proof failed. They are fixed strings, safe for
// logs and metrics labels, and never carry any part of the proof.
const (
	ReasonMissing   = "missing"   // no DPoP header
	ReasonHeader    = "header"    // DPoP header repeated or too large
	ReasonJWS       = "jws"       // not a compact JWS with one signature
	ReasonTyp       = "typ"       // typ is not dpop+jwt
	ReasonAlg       = "alg"       // algorithm not on the allow-list
	ReasonJWK       = "jwk"       // jwk missing, private, invalid or not fit for alg
	ReasonSignature = "signature" // signature does not verify with jwk
	ReasonClaims    = "claims"    // claims not JSON, a required one missing or mistyped
	ReasonHTM       = "htm"       // htm is not the request's method
	ReasonHTU       = "htu"       // htu is not the request's URL
	ReasonIAT       = "iat"       // iat outside the window
	ReasonATH       = "ath"       // ath missing or not the access token's hash
	ReasonNonce     = "nonce"     // nonce missing where required, or not current
	ReasonReplay    = "replay"    // jti seen before
)

// Error is a refused proof. Code is the OAuth error code; Reason the check
// that failed; Malformed marks a request that is broken rather than a proof
// that fails a check (a missing, repeated or oversized header, or bytes that
// are no JWS): resource servers answer it 400, not 401.
type Error struct {
	Code      string
	Reason    string
	Malformed bool
}

func (e *Error) Error() string { return "dpop: " + e.Code + ": " + e.Reason }

// Description is a fixed, non-leaking error_description for the reason.
func (e *Error) Description() string {
	if d, ok := descriptions[e.Reason]; ok {
		return d
	}
	return "The DPoP proof is invalid."
}

var descriptions = map[string]string{
	ReasonMissing:   "A DPoP proof is required.",
	ReasonHeader:    "Send exactly one DPoP header of at most 8 KiB.",
	ReasonJWS:       "The DPoP proof is not a compact JWS.",
	ReasonTyp:       "The DPoP proof must have typ dpop+jwt.",
	ReasonAlg:       "The DPoP proof's algorithm is not supported.",
	ReasonJWK:       "The DPoP proof must carry a public key fit for its algorithm in jwk.",
	ReasonSignature: "The DPoP proof's signature does not verify.",
	ReasonClaims:    "The DPoP proof lacks a required claim (jti, htm, htu, iat) or has one of the wrong type.",
	ReasonHTM:       "The DPoP proof's htm does not match the request method.",
	ReasonHTU:       "The DPoP proof's htu does not match the request URL.",
	ReasonIAT:       "The DPoP proof's iat is outside the accepted window.",
	ReasonATH:       "The DPoP proof's ath does not match the access token.",
	ReasonNonce:     "A DPoP proof with the server's current nonce is required.",
	ReasonReplay:    "The DPoP proof was already used.",
}

func refuse(reason string) *Error { return &Error{Code: CodeInvalidProof, Reason: reason} }

func malformed(reason string) *Error {
	return &Error{Code: CodeInvalidProof, Reason: reason, Malformed: true}
}

// AsError returns err's *Error, if it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Challenge is the WWW-Authenticate value of a resource endpoint refusing
// a request for a DPoP reason (RFC 9449 §7.1): the DPoP scheme with the
// accepted algorithms, and the error when there is one.
func Challenge(realm, code, description string) string {
	var b strings.Builder
	b.WriteString(`DPoP realm="`)
	b.WriteString(realm)
	b.WriteString(`", algs="`)
	b.WriteString(strings.Join(Algorithms(), " "))
	b.WriteString(`"`)
	if code != "" {
		b.WriteString(`, error="`)
		b.WriteString(code)
		b.WriteString(`"`)
		if description != "" {
			b.WriteString(`, error_description="`)
			b.WriteString(description)
			b.WriteString(`"`)
		}
	}
	return b.String()
}
