package oauth

import (
	"context"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/storage"
)

// DPoP (RFC 9449) at the authorization server. The token endpoint verifies
// a request's proof and binds the tokens it issues to the proof's key
// (storage.Session.DPoPJKT, the access token's cnf.jkt); userinfo, a
// resource endpoint, then requires the DPoP scheme with a proof by that key
// for such tokens and refuses them as bearer tokens. The checks themselves
// live in server/dpop.

// HTTP headers of RFC 9449.
const (
	headerDPoP      = "DPoP"
	headerDPoPNonce = "DPoP-Nonce"
	schemeDPoP      = "DPoP"
)

// tokenProof verifies the token request's proof when DPoP is enabled and
// the request carries a DPoP header; otherwise it returns nil. The URL the
// proof must name is the issuer's token endpoint, never one derived from
// the request's Host header.
func (p *Provider) tokenProof(ctx context.Context, r *http.Request) (*dpop.Proof, error) {
	if p.cfg.DPoP == nil || len(r.Header.Values(headerDPoP)) == 0 {
		return nil, nil
	}
	return p.cfg.DPoP.Verify(ctx, r.Header.Values(headerDPoP), dpop.Check{Method: r.Method, URL: p.cfg.Issuer + pathToken})
}

// bindProof decides, for an access request fosite accepted, whether the
// tokens it will issue are bound to proof's key (RFC 9449 §5):
//   - a client registered with dpop_bound_access_tokens must send a proof
//     (§5.2);
//   - a refresh token of a public client is bound to the key of the proof
//     it was issued with: refreshing needs a proof by that same key (§5,
//     §5.0 "refresh tokens ... bound to the key");
//   - a confidential client's refresh token is not bound (it is already
//     sender-constrained by client authentication): the new tokens follow
//     this request's proof, or are bearer tokens without one.
func (p *Provider) bindProof(ar fosite.AccessRequester, proof *dpop.Proof) error {
	sess, ok := ar.GetSession().(*storage.Session)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected session type")
	}
	client := ar.GetClient()
	required := false
	if c, ok := client.(*storage.Client); ok {
		required = c.DPoPBoundAccessTokens
	}
	boundRefresh := ar.GetGrantTypes().ExactOne("refresh_token") && sess.DPoPJKT != "" && client.IsPublic()
	switch {
	case proof == nil && required:
		return &dpop.Error{Code: dpop.CodeInvalidProof, Reason: dpop.ReasonMissing}
	case proof == nil && boundRefresh:
		return dpopRefusal(dpop.CodeInvalidProof, "The refresh token is bound to a DPoP key: present a proof signed with it.")
	case proof != nil && boundRefresh && proof.JKT != sess.DPoPJKT:
		return dpopRefusal(dpop.CodeInvalidProof, "The DPoP proof's key is not the key the refresh token is bound to.")
	case proof == nil:
		sess.DPoPJKT = ""
	default:
		sess.DPoPJKT = proof.JKT
	}
	return nil
}

// dpopRefusal is a token endpoint error with a DPoP error code.
func dpopRefusal(code, description string) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{ErrorField: code, DescriptionField: description, CodeField: http.StatusBadRequest}
}

// writeProofError answers a token request whose proof was refused: 400
// invalid_dpop_proof, or 400 use_dpop_nonce with a fresh DPoP-Nonce (RFC
// 9449 §8); a store failure is answered like any other (503).
func (p *Provider) writeProofError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	e, ok := dpop.AsError(err)
	if !ok {
		p.writeAccessError(w, r, ar, err)
		return
	}
	if e.Code == dpop.CodeUseNonce {
		w.Header().Set(headerDPoPNonce, p.cfg.DPoP.Nonce())
	}
	p.writeAccessError(w, r, ar, dpopRefusal(e.Code, e.Description()))
}

// resourceCredential reads the access token of a request to a resource
// endpoint (userinfo). With DPoP enabled, "Authorization: DPoP <token>"
// must come with a proof for this request and token (RFC 9449 §7.1),
// returned verified; anything else is read as a bearer token (RFC 6750),
// with a nil proof.
func (p *Provider) resourceCredential(ctx context.Context, r *http.Request, path string) (string, *dpop.Proof, error) {
	authz := r.Header.Values("Authorization")
	if p.cfg.DPoP == nil {
		return fosite.AccessTokenFromRequest(r), nil, nil
	}
	if len(authz) > 1 {
		return "", nil, &dpop.Error{Code: "invalid_request", Reason: dpop.ReasonHeader, Malformed: true}
	}
	scheme, token, _ := strings.Cut(strings.Join(authz, ""), " ")
	if !strings.EqualFold(scheme, schemeDPoP) {
		return fosite.AccessTokenFromRequest(r), nil, nil
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", nil, &dpop.Error{Code: "invalid_request", Reason: dpop.ReasonMissing, Malformed: true}
	}
	proof, err := p.cfg.DPoP.Verify(ctx, r.Header.Values(headerDPoP), dpop.Check{Method: r.Method, URL: p.cfg.Issuer + path, AccessToken: token})
	return token, proof, err
}

// checkBinding compares a token's binding with how it was presented (RFC
// 9449 §7): a bound token needs the DPoP scheme and a proof by its key; an
// unbound token is a bearer token and is refused under the DPoP scheme.
func checkBinding(jkt string, proof *dpop.Proof) (code, description string, ok bool) {
	switch {
	case proof == nil && jkt != "":
		return "invalid_token", "The access token is DPoP-bound: present it with the DPoP scheme and a proof.", false
	case proof != nil && jkt == "":
		return "invalid_token", "The access token is not DPoP-bound: present it with the Bearer scheme.", false
	case proof != nil && proof.JKT != jkt:
		return dpop.CodeInvalidProof, "The DPoP proof's key is not the key the access token is bound to.", false
	}
	return "", "", true
}

// resourceChallenge answers a refused resource request with the RFC 6750
// and, with DPoP enabled, the RFC 9449 §7.1 challenges: the scheme the
// error concerns carries it, the other is offered bare. A use_dpop_nonce
// error comes with a fresh DPoP-Nonce.
func (p *Provider) resourceChallenge(w http.ResponseWriter, status int, dpopScheme bool, code, description, scope string) {
	h := w.Header()
	bearer := `Bearer realm="bulwark"` // #nosec G101 -- an authentication challenge, not a credential
	if !dpopScheme && code != "" {
		bearer += `, error="` + code + `"`
		if scope != "" {
			bearer += `, scope="` + scope + `"`
		}
	}
	h.Add("WWW-Authenticate", bearer)
	if p.cfg.DPoP != nil {
		if dpopScheme {
			c := dpop.Challenge("bulwark", code, description)
			if scope != "" {
				c += `, scope="` + scope + `"`
			}
			h.Add("WWW-Authenticate", c)
		} else {
			h.Add("WWW-Authenticate", dpop.Challenge("bulwark", "", ""))
		}
		if code == dpop.CodeUseNonce {
			h.Set(headerDPoPNonce, p.cfg.DPoP.Nonce())
		}
	}
	w.WriteHeader(status)
}

// writeResourceProofError answers a resource request whose DPoP credential
// was refused: 400 invalid_request for a malformed one (repeated or
// oversized headers, bytes that are no JWS), 401 otherwise.
func (p *Provider) writeResourceProofError(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := dpop.AsError(err)
	if !ok {
		p.writeJSONError(w, r, err)
		return
	}
	if e.Malformed {
		p.resourceChallenge(w, http.StatusBadRequest, true, "invalid_request", e.Description(), "")
		return
	}
	p.resourceChallenge(w, http.StatusUnauthorized, true, e.Code, e.Description(), "")
}
