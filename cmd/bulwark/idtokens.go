package main

import (
	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/keys"
)

// idTokenSigners returns a signer for every algorithm the ring keeps keys
// for: a client registered with id_token_signed_response_alg gets its ID
// tokens (and its back-channel logout tokens) from the signer of that
// algorithm; every other client from --id-token-alg's.
func idTokenSigners(ring *keys.Ring, algs []string) map[string]jwt.Signer {
	out := make(map[string]jwt.Signer, len(algs))
	for _, alg := range algs {
		out[alg] = ring.Signer(alg)
	}
	return out
}
