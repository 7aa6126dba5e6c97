package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// TestWriteErrorMapping: the one error mapper gives each store sentinel its
// status, however deeply it is wrapped.
func TestWriteErrorMapping(t *testing.T) {
	a := &API{svc: &Service{log: quietLogger()}}
	cases := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"invalid-input", fmt.Errorf("admin: list clients: %w", fmt.Errorf("postgres: %w", storage.ErrInvalidInput)), http.StatusBadRequest, "invalid_request"},
		{"not-found", fmt.Errorf("admin: client: %w", storage.ErrNotFound), http.StatusNotFound, "not_found"},
		{"precondition-failed", fmt.Errorf("admin: %w", storage.ErrPreconditionFailed), http.StatusPreconditionFailed, "precondition_failed"},
		{"conflict", fmt.Errorf("admin: %w", storage.ErrConflict), http.StatusConflict, "conflict"},
		{"unavailable", fmt.Errorf("admin: %w", storage.ErrUnavailable), http.StatusServiceUnavailable, "temporarily_unavailable"},
		{"unexpected", errors.New("boom"), http.StatusInternalServerError, "server_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			a.writeError(w, httptest.NewRequest(http.MethodGet, "/admin/clients", nil), tc.err)
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body.String(), err)
			}
			if w.Code != tc.status || body.Error != tc.code {
				t.Fatalf("got %d %q, want %d %q", w.Code, body.Error, tc.status, tc.code)
			}
		})
	}
}

// TestRetryVersion: a lost version race and a serialization failure or
// deadlock of the transaction are repeated, a bounded number of times;
// anything else is returned at once.
func TestRetryVersion(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		failures  int // fn fails this many times, then succeeds
		wantCalls int
		wantErr   error
	}{
		{"success", nil, 0, 1, nil},
		{"precondition-then-success", storage.ErrPreconditionFailed, 2, 3, nil},
		{"serialization-then-success", fmt.Errorf("postgres: revoke: %w", fosite.ErrSerializationFailure), 3, 4, nil},
		{"serialization-forever-bounded", fosite.ErrSerializationFailure, 100, 5, fosite.ErrSerializationFailure},
		{"not-found-not-retried", storage.ErrNotFound, 100, 1, storage.ErrNotFound},
		{"invalid-input-not-retried", storage.ErrInvalidInput, 100, 1, storage.ErrInvalidInput},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := retryVersion(func() error {
				calls++
				if calls <= tc.failures {
					return tc.err
				}
				return nil
			})
			if calls != tc.wantCalls {
				t.Fatalf("fn ran %d times, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
}
