package storage

import (
	"errors"

	"github.com/ory/fosite"
)

var (
	// ErrNotFound is returned when a record does not exist. It is fosite's
	// own sentinel so that fosite handlers recognise it without translation.
	ErrNotFound = fosite.ErrNotFound

	// ErrConflict is returned when a create would duplicate a unique key
	// (client id, username, key id, ...).
	ErrConflict = errors.New("storage: conflict")

	// ErrPreconditionFailed is returned by conditional updates whose expected
	// version (or expected state) no longer matches the stored one. The
	// admin API maps it to 412 for If-Match; schedulers treat it as "another
	// replica already did it".
	ErrPreconditionFailed = errors.New("storage: precondition failed")

	// ErrUnavailable wraps failures to reach the database at all, so the
	// server can answer 503 with Retry-After instead of 500.
	ErrUnavailable = errors.New("storage: unavailable")

	// ErrInvalidInput is returned when the database refuses a value as
	// malformed (a NUL byte or invalid UTF-8 in text). It is the client's
	// fault: callers answer 400, never 500.
	ErrInvalidInput = errors.New("storage: invalid input")

	// ErrOwnerDisabled is returned by CreateAPIKey when the key's owner is
	// a disabled client or user: a disabled owner must not get a live key.
	// LockMint returns it when a grant's user or client is disabled or
	// gone: they must not get new tokens either.
	ErrOwnerDisabled = errors.New("storage: owner is disabled")
)
