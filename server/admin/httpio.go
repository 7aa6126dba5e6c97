package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// maxBody bounds every request body; client metadata with a JWKS is the
// largest legitimate one.
const maxBody = 256 << 10

// readBody reads a JSON request body: Content-Type application/json,
// bounded size, a single JSON object. An empty body is returned as nil.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errBodyTooLarge
		}
		return nil, invalid("invalid_request", "the request body could not be read")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, errUnsupportedMedia
	}
	return b, nil
}

// decodeStrict decodes body into dst. Fields in readOnly are rejected by
// name (a server-controlled field is never silently ignored); any other
// unknown field, a type mismatch or trailing data is a 400 too. code is
// the error code used for those 400s.
func decodeStrict(body []byte, dst any, code string, readOnly []string) error {
	if body == nil {
		return invalid(code, "a JSON object body is required")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return invalid(code, "the body must be a JSON object")
	}
	var problems []storage.FieldProblem
	for _, f := range readOnly {
		if _, ok := fields[f]; ok {
			problems = append(problems, storage.FieldProblem{Field: f, Problem: "is controlled by the server and must not be sent"})
		}
	}
	if len(problems) > 0 {
		slices.SortFunc(problems, func(a, b storage.FieldProblem) int { return strings.Compare(a.Field, b.Field) })
		return invalid(code, "the body sets server-controlled fields", problems...)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(code, err)
	}
	if dec.More() {
		return invalid(code, "the body must hold exactly one JSON object")
	}
	return nil
}

// decodeError names the field a decoding error is about without echoing
// the value (which could be a secret pasted in the wrong place).
func decodeError(code string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return invalid(code, "a field has the wrong type",
			storage.FieldProblem{Field: te.Field, Problem: "must be of type " + te.Type.String()})
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		name, _ := strconv.Unquote(strings.TrimPrefix(msg, "json: unknown field "))
		if len(name) > 64 {
			name = name[:64] + "…"
		}
		return invalid(code, "the body has an unknown field", storage.FieldProblem{Field: name, Problem: "is not a known field"})
	}
	return invalid(code, "the body is not valid JSON for this operation")
}

// requireEmpty accepts an action request with no body or "{}".
func requireEmpty(r *http.Request) error {
	b, err := readBody(r)
	if err != nil || b == nil {
		return err
	}
	var v struct{}
	return decodeStrict(b, &v, "invalid_request", nil)
}

// etag is the strong entity tag of a version.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// ifMatch returns the version named by If-Match. Missing is 428. An entity
// tag that cannot be ours (weak, "*", a list, garbage) can never match
// strongly, so it is 412 (RFC 9110 §13.1.1).
func ifMatch(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" {
		return 0, errPreconditionRequired
	}
	if len(v) < 3 || v[0] != '"' || v[len(v)-1] != '"' {
		return 0, fmt.Errorf("admin: If-Match %w", storage.ErrPreconditionFailed)
	}
	n, err := strconv.ParseInt(v[1:len(v)-1], 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("admin: If-Match %w", storage.ErrPreconditionFailed)
	}
	return n, nil
}

// listOptions reads ?limit=&after=&name=.
func listOptions(r *http.Request) (storage.ListOptions, error) {
	q := r.URL.Query()
	opts := storage.ListOptions{After: q.Get("after"), NameContains: q.Get("name")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize {
			return opts, invalid("invalid_request", "bad query parameter",
				storage.FieldProblem{Field: "limit", Problem: fmt.Sprintf("must be an integer from 1 to %d", MaxPageSize)})
		}
		opts.Limit = n
	}
	return opts, nil
}

// page is a listing response.
type page[T any] struct {
	Items []T `json:"items"`
	// NextAfter, when set, is the ?after= of the next page.
	NextAfter string `json:"next_after,omitempty"`
}

func newPage[S any, T any](items []S, limit int, view func(S) T, id func(S) string) page[T] {
	p := page[T]{Items: make([]T, 0, len(items))}
	for _, it := range items {
		p.Items = append(p.Items, view(it))
	}
	if limit <= 0 {
		limit = DefaultPageSize
	}
	if len(items) == limit && len(items) > 0 {
		p.NextAfter = id(items[len(items)-1])
	}
	return p
}

// ts renders a time, omitting the zero time.
func ts(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// durations converts second counts, collecting a problem per bad field.
type durations struct{ problems []storage.FieldProblem }

func (d *durations) get(field string, secs int64) time.Duration {
	const maxSecs = 10 * 365 * 24 * 3600
	if secs < 0 || secs > maxSecs {
		d.problems = append(d.problems, storage.FieldProblem{Field: field, Problem: fmt.Sprintf("must be between 0 and %d seconds", maxSecs)})
		return 0
	}
	return time.Duration(secs) * time.Second
}
