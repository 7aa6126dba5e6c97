package admin

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the hand-written OpenAPI 3 description of the API. A test
// walks the router and fails when a route and the document disagree.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI document (a copy).
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

// openAPI serves the document. It needs no API key: it describes the API
// and holds no secrets, and generators fetch it before they have one.
func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPIDoc)
}
