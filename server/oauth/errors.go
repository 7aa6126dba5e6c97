package oauth

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// retryAfterSeconds is what a client is told to wait when the database is
// unreachable.
const retryAfterSeconds = "5"

// classify maps any error to an HTTP status and an OAuth error code. It is
// the one place where errors become responses: fosite's RFC 6749 errors keep
// their code, an unreachable database is 503 temporarily_unavailable, and
// everything unexpected is a bare 500 server_error with no detail.
func classify(err error) (status int, code, description string) {
	var rfc *fosite.RFC6749Error
	switch {
	case errors.Is(err, storage.ErrUnavailable):
		return http.StatusServiceUnavailable, "temporarily_unavailable",
			"The service is temporarily unavailable. Please try again shortly."
	case errors.As(err, &rfc) && rfc.ErrorField != fosite.ErrServerError.ErrorField:
		return rfc.CodeField, rfc.ErrorField, rfc.GetDescription()
	case errors.Is(err, storage.ErrInvalidInput):
		return http.StatusBadRequest, "invalid_request", "The request contains bytes that are not valid text."
	case errors.Is(err, storage.ErrNotFound):
		return http.StatusNotFound, "not_found", "The requested resource does not exist."
	default:
		return http.StatusInternalServerError, "server_error",
			"The server encountered an unexpected condition."
	}
}

// oauthError gives the store's sentinels their OAuth meaning where fosite
// passed them on as server_error (or unrecognised): a code consumed by a
// concurrent request is invalid_grant (RFC 6749 §5.2), bytes the database
// refuses as text are invalid_request. Other errors are returned as they
// are.
func oauthError(err error) error {
	if err == nil {
		return nil
	}
	if rfc := fosite.ErrorToRFC6749Error(err); rfc.ErrorField != fosite.ErrServerError.ErrorField &&
		rfc.CodeField != http.StatusInternalServerError {
		return err
	}
	switch {
	case errors.Is(err, fosite.ErrInvalidatedAuthorizeCode):
		return fosite.ErrInvalidGrant.WithHint("The authorization code has already been used.").WithWrap(err)
	case errors.Is(err, storage.ErrInvalidInput):
		return fosite.ErrInvalidRequest.WithHint("The request contains bytes that are not valid text.").WithWrap(err)
	}
	return err
}

// unavailable reports whether err means the database could not be reached;
// such errors bypass fosite's writers, which would call them server_error.
func unavailable(err error) bool { return errors.Is(err, storage.ErrUnavailable) }

// logError records err for operators; user-facing responses never carry it.
func (p *Provider) logError(r *http.Request, msg string, err error) {
	status, code, _ := classify(err)
	l := p.log.WithField("request_id", reqinfo.RequestID(r.Context())).WithField("error_code", code)
	if rfc := new(fosite.RFC6749Error); errors.As(err, &rfc) {
		l = l.WithField("debug", rfc.Debug())
		if c := rfc.Cause(); c != nil {
			l = l.WithField("cause", c.Error())
		}
	} else {
		l = l.WithError(err)
	}
	if status >= 500 {
		l.Error(msg)
	} else {
		l.Debug(msg)
	}
}

// writeJSONError answers an API endpoint with an RFC 6749 §5.2 error body.
func (p *Provider) writeJSONError(w http.ResponseWriter, r *http.Request, err error) {
	p.logError(r, "oauth request failed", err)
	status, code, desc := classify(err)
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", retryAfterSeconds)
	}
	if status == http.StatusUnauthorized && code == fosite.ErrInvalidClient.ErrorField {
		h.Set("WWW-Authenticate", `Basic realm="bulwark"`)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// writePageError answers a browser with the HTML error page. It never
// redirects: the redirect URI of a failed request is not trusted.
func (p *Provider) writePageError(w http.ResponseWriter, r *http.Request, err error) {
	p.logError(r, "page request failed", err)
	status, code, desc := classify(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	p.render(w, r, status, "error", pageData{
		Title:     "Something went wrong",
		Message:   desc,
		Code:      code,
		RequestID: reqinfo.RequestID(r.Context()),
	})
}

// maxBody caps request bodies of the OAuth endpoints.
const maxBody = 64 << 10

// parseBody caps the body at maxBody and parses the query and body the way
// fosite does, multipart included, so Bulwark's checks before fosite see
// every parameter fosite will act on.
func parseBody(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	// #nosec G120 -- the body was just capped at maxBody by MaxBytesReader
	if err := r.ParseMultipartForm(maxBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		return err
	}
	return nil
}
