package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// RetryAfterSeconds is the Retry-After sent with 503 when the database is
// unreachable.
const RetryAfterSeconds = "5"

var (
	errUnauthenticated      = errors.New("admin: no authenticated principal")
	errPreconditionRequired = errors.New("admin: If-Match is required")
	errBodyTooLarge         = errors.New("admin: request body too large")
	errNotAUser             = errors.New("admin: the API key is not owned by a user")
)

// scopeError is a function-level authorization failure.
type scopeError struct{ scope string }

func (e *scopeError) Error() string { return "admin: scope " + e.scope + " required" }

// EscalationError is ErrScopeEscalation naming the scopes the caller
// lacks, so the answer can say which ones (RFC 6750 §3.1 scope=).
type EscalationError struct {
	// Missing are the admin scopes the caller would need.
	Missing []string
	// What says what the scopes are needed for.
	What string
}

func (e *EscalationError) Error() string {
	return "admin: " + e.What + " needs " + strings.Join(e.Missing, " ")
}

// Is makes errors.Is(err, ErrScopeEscalation) hold.
func (e *EscalationError) Is(target error) bool { return target == ErrScopeEscalation }

func escalation(what string, missing []string) error {
	return &EscalationError{Missing: slices.Clone(missing), What: what}
}

// mediaTypeError is a body sent with the wrong Content-Type.
type mediaTypeError struct{ want string }

func (e *mediaTypeError) Error() string { return "admin: Content-Type must be " + e.want }

// errorBody is every error response.
type errorBody struct {
	Error       string                 `json:"error"`
	Description string                 `json:"error_description"`
	Fields      []storage.FieldProblem `json:"fields,omitempty"`
}

// writeError is the one place where errors become HTTP responses. Messages
// are fixed per class or built from field problems (which never contain
// secrets); anything unexpected is logged and answered with a generic 500.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		inv   *InvalidError
		val   *storage.ValidationError
		scope *scopeError
		media *mediaTypeError
		esc   *EscalationError
	)
	status, body := http.StatusInternalServerError, errorBody{Error: "server_error", Description: "the server could not complete the request"}
	switch {
	case errors.As(err, &inv):
		status, body = http.StatusBadRequest, errorBody{Error: inv.Code, Description: inv.Description, Fields: inv.Problems}
	case errors.As(err, &val):
		status, body = http.StatusBadRequest, errorBody{Error: "invalid_request", Description: "the request is invalid", Fields: val.Problems}
	case errors.Is(err, errUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark-admin"`)
		status, body = http.StatusUnauthorized, errorBody{Error: "unauthorized", Description: "a valid API key is required"}
	case errors.As(err, &scope):
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q`, scope.scope))
		status, body = http.StatusForbidden, errorBody{Error: "insufficient_scope", Description: "this operation requires the scope " + scope.scope}
	case errors.As(err, &esc):
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q`, strings.Join(esc.Missing, " ")))
		status, body = http.StatusForbidden, errorBody{Error: "insufficient_scope",
			Description: esc.What + " needs the scope(s) " + strings.Join(esc.Missing, " ") + ", which you do not hold"}
	case errors.Is(err, ErrScopeEscalation), errors.Is(err, apikeys.ErrScopeEscalation):
		status, body = http.StatusForbidden, errorBody{Error: "insufficient_scope", Description: "this would grant, restore or hand over a scope you do not hold"}
	case errors.Is(err, ErrWrongPassword):
		status, body = http.StatusForbidden, errorBody{Error: "access_denied", Description: "the current password is wrong"}
	case errors.Is(err, errNotAUser):
		status, body = http.StatusForbidden, errorBody{Error: "access_denied", Description: "only an API key owned by a user can change that user's password"}
	case errors.Is(err, storage.ErrInvalidInput):
		status, body = http.StatusBadRequest, errorBody{Error: "invalid_request", Description: "the request contains bytes that are not valid text"}
	case errors.Is(err, storage.ErrUnavailable):
		w.Header().Set("Retry-After", RetryAfterSeconds)
		status, body = http.StatusServiceUnavailable, errorBody{Error: "temporarily_unavailable", Description: "the database is unavailable; retry later"}
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, keys.ErrUnknownKey):
		status, body = http.StatusNotFound, errorBody{Error: "not_found", Description: "no such resource"}
	case errors.Is(err, storage.ErrPreconditionFailed):
		status, body = http.StatusPreconditionFailed, errorBody{Error: "precondition_failed", Description: "the resource changed since you read it; fetch it again"}
	case errors.Is(err, errPreconditionRequired):
		status, body = http.StatusPreconditionRequired, errorBody{Error: "precondition_required", Description: "send If-Match with the ETag of the resource you read"}
	case errors.Is(err, storage.ErrConflict):
		status, body = http.StatusConflict, errorBody{Error: "conflict", Description: "a resource with this identifier or name already exists"}
	case errors.Is(err, apikeys.ErrConflict):
		status, body = http.StatusConflict, errorBody{Error: "conflict", Description: "a concurrent change won; retry"}
	case errors.Is(err, storage.ErrOwnerDisabled):
		status, body = http.StatusConflict, errorBody{Error: "conflict", Description: "the key's owner is disabled; enable it before creating a key"}
	case errors.Is(err, apikeys.ErrNotActive):
		status, body = http.StatusConflict, errorBody{Error: "conflict", Description: "the API key is not active"}
	case errors.Is(err, ErrNoSecret):
		status, body = http.StatusConflict, errorBody{Error: "conflict", Description: "the client does not authenticate with a client secret"}
	case errors.Is(err, keys.ErrWrongSecret):
		// Nothing was written: the server's master secret does not open
		// the stored keys (a misconfigured replica). Not the caller's fault.
		status, body = http.StatusServiceUnavailable, errorBody{Error: "temporarily_unavailable", Description: "this server's master secret does not open the stored signing keys; nothing was changed"}
	case errors.Is(err, keys.ErrUnsupportedAlgorithm):
		status, body = http.StatusBadRequest, errorBody{Error: "invalid_request", Description: "unsupported signing algorithm"}
	case errors.As(err, &media):
		status, body = http.StatusUnsupportedMediaType, errorBody{Error: "invalid_request", Description: "Content-Type must be " + media.want}
	case errors.Is(err, errBodyTooLarge):
		status, body = http.StatusRequestEntityTooLarge, errorBody{Error: "invalid_request", Description: "the request body is too large"}
	case errors.Is(err, ErrRegistrationTokensOff):
		status, body = http.StatusNotImplemented, errorBody{Error: "not_implemented", Description: "initial access tokens are not configured"}
	case errors.Is(err, errNoAPIKeys):
		status, body = http.StatusNotImplemented, errorBody{Error: "not_implemented", Description: "API key management is not configured"}
	}
	if status >= 500 {
		// Wrapped errors name operations and ids, never secrets.
		a.svc.log.WithError(err).WithField("path", r.URL.Path).Error("admin: request failed")
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v) // the status is sent; a failed write means the client left
}
