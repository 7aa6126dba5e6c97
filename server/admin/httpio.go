package admin

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// maxBody bounds every request body; client metadata with a JWKS is the
// largest legitimate one.
const maxBody = 256 << 10

// Request body media types.
const (
	mediaJSON       = "application/json"
	mediaMergePatch = "application/merge-patch+json" // RFC 7396 §4
)

// readBody reads a JSON request body: Content-Type application/json,
// bounded size. An empty body is returned as nil.
func readBody(r *http.Request) ([]byte, error) { return readBodyAs(r, mediaJSON) }

// readBodyAs reads a bounded request body of media type want.
func readBodyAs(r *http.Request, want string) ([]byte, error) {
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
	if err != nil || mt != want {
		return nil, &mediaTypeError{want: want}
	}
	return b, nil
}

// decodeStrict decodes body into dst. Fields in readOnly are rejected by
// name (a server-controlled field is never silently ignored); any other
// unknown field, a type mismatch or trailing data is a 400 too. code is
// the error code used for those 400s.
func decodeStrict(body []byte, dst any, code string, readOnly []string) error {
	fields, err := objectFields(body, code)
	if err != nil {
		return err
	}
	problems, err := serverOwned(fields, nil, readOnly)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return invalid(code, "the body sets server-controlled fields", sortProblems(problems)...)
	}
	return decodeFields(fields, dst, code)
}

// objectFields splits a body that must be one JSON object into its
// members, numbers kept exact.
func objectFields(body []byte, code string) (map[string]json.RawMessage, error) {
	if body == nil {
		return nil, invalid(code, "a JSON object body is required")
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, invalid(code, "the body must be a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid(code, "the body must hold exactly one JSON object")
	}
	return fields, nil
}

// decodeFields decodes the members into dst, refusing unknown ones.
func decodeFields(fields map[string]json.RawMessage, dst any, code string) error {
	b, err := json.Marshal(fields)
	if err != nil {
		return invalid(code, "the body is not valid JSON for this operation")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(code, err)
	}
	return nil
}

// serverOwned removes from fields every server-owned member whose value
// equals the one in current (the resource as GET shows it, nil when there
// is none), so what GET returns can be sent back; every other
// server-owned member present is a problem named after its field.
func serverOwned(fields map[string]json.RawMessage, current any, owned []string) ([]storage.FieldProblem, error) {
	var cur map[string]json.RawMessage
	if current != nil {
		b, err := json.Marshal(current)
		if err != nil {
			return nil, fmt.Errorf("admin: render current resource: %w", err)
		}
		if err := json.Unmarshal(b, &cur); err != nil {
			return nil, fmt.Errorf("admin: render current resource: %w", err)
		}
	}
	var problems []storage.FieldProblem
	for _, f := range owned {
		sent, ok := fields[f]
		if !ok {
			continue
		}
		have, shown := cur[f]
		switch {
		case !shown && current == nil:
			problems = append(problems, storage.FieldProblem{Field: f, Problem: "is controlled by the server and must not be sent"})
		case !shown:
			problems = append(problems, storage.FieldProblem{Field: f, Problem: "is controlled by the server and never returned; leave it out"})
		case !sameJSON(sent, have):
			problems = append(problems, storage.FieldProblem{Field: f, Problem: "is controlled by the server and cannot be changed; send the value you read or leave it out"})
		default:
			delete(fields, f)
		}
	}
	return problems, nil
}

// sameJSON compares two JSON values by meaning: numbers exactly, and
// strings that are both RFC 3339 times as instants.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if decodeNumber(a, &x) != nil || decodeNumber(b, &y) != nil {
		return false
	}
	if xs, ok := x.(string); ok {
		if ys, ok := y.(string); ok {
			xt, errX := time.Parse(time.RFC3339Nano, xs)
			yt, errY := time.Parse(time.RFC3339Nano, ys)
			if errX == nil && errY == nil {
				return xt.Equal(yt)
			}
			return xs == ys
		}
	}
	return reflect.DeepEqual(x, y)
}

func decodeNumber(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// applyMergePatch applies an RFC 7396 JSON merge patch (which must be an
// object here: a resource is an object) to the JSON of current.
func applyMergePatch(current any, patch []byte, code string) ([]byte, error) {
	var p any
	if patch == nil || decodeNumber(patch, &p) != nil {
		return nil, invalid(code, "the body must be a JSON merge patch object (RFC 7396)")
	}
	if _, ok := p.(map[string]any); !ok {
		return nil, invalid(code, "the body must be a JSON merge patch object (RFC 7396)")
	}
	b, err := json.Marshal(current)
	if err != nil {
		return nil, fmt.Errorf("admin: render current resource: %w", err)
	}
	var target any
	if err := decodeNumber(b, &target); err != nil {
		return nil, fmt.Errorf("admin: render current resource: %w", err)
	}
	out, err := json.Marshal(mergePatch(target, p))
	if err != nil {
		return nil, fmt.Errorf("admin: render patched resource: %w", err)
	}
	return out, nil
}

// mergePatch is RFC 7396 §2 MergePatch: members of an object patch
// replace, null removes, anything else replaces the whole target.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

func sortProblems(p []storage.FieldProblem) []storage.FieldProblem {
	slices.SortStableFunc(p, func(a, b storage.FieldProblem) int { return strings.Compare(a.Field, b.Field) })
	return p
}

// decodeError names the field a decoding error is about without echoing
// the value (which could be a secret pasted in the wrong place).
func decodeError(code string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return invalid(code, "a field has the wrong type",
			storage.FieldProblem{Field: te.Field, Problem: "must be a JSON " + jsonType(te.Type)})
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

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// jsonType names the JSON type a Go type is decoded from, for messages
// that a caller who never saw the Go code understands.
func jsonType(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return t.String()
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

// errStale is a write whose If-Match names a version that is not the
// current one.
var errStale = fmt.Errorf("admin: If-Match names an old version: %w", storage.ErrPreconditionFailed)

// ifMatch returns the version named by If-Match (RFC 9110 §13.1.1).
// Missing is 428. A value that is not one quoted entity tag (2 instead of
// "2", "*", a list) is 400 explaining the format: it is a client bug, not
// a lost race. A well-formed tag that is not a current version of ours (a
// weak tag, an old version) can never match strongly, so it is 412.
func ifMatch(r *http.Request) (int64, error) {
	vals := r.Header.Values("If-Match")
	if len(vals) == 0 || strings.TrimSpace(vals[0]) == "" {
		return 0, errPreconditionRequired
	}
	v := strings.TrimSpace(vals[0])
	if weak, ok := strings.CutPrefix(v, "W/"); ok && len(weak) >= 2 && weak[0] == '"' && weak[len(weak)-1] == '"' {
		// A weak tag is well-formed but never matches strongly.
		return 0, errStale
	}
	if len(vals) > 1 || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || strings.Contains(v[1:len(v)-1], `"`) {
		return 0, invalid("invalid_request", `If-Match must be exactly one strong entity tag in double quotes, as the ETag header sent it (for example If-Match: "3")`,
			storage.FieldProblem{Field: "If-Match", Problem: `must be the ETag you read, with its double quotes, such as "3"`})
	}
	n, err := strconv.ParseInt(v[1:len(v)-1], 10, 64)
	if err != nil || n <= 0 {
		return 0, errStale
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

// durationProblems names each member of fields that should be a duration
// (storage.Duration: a Go duration string, or seconds for compatibility)
// and is not.
func durationProblems(fields map[string]json.RawMessage, names []string) []storage.FieldProblem {
	var problems []storage.FieldProblem
	for _, f := range names {
		if raw, ok := fields[f]; ok {
			var d storage.Duration
			if err := d.UnmarshalJSON(raw); err != nil {
				problems = append(problems, storage.FieldProblem{Field: f, Problem: `must be a duration such as "15m" or "720h" (or a number of seconds)`})
			}
		}
	}
	return problems
}

// checkDurations is durationProblems for a whole body, as an error.
func checkDurations(body []byte, names []string, code string) error {
	fields, err := objectFields(body, code)
	if err != nil {
		return err
	}
	if p := durationProblems(fields, names); len(p) > 0 {
		return invalid(code, "a duration is invalid", p...)
	}
	return nil
}
