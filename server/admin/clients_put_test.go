package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage/memory"
)

// getClientJSON reads a client as the API shows it, with its ETag.
func getClientJSON(t *testing.T, e *env, id string) (map[string]any, string) {
	t.Helper()
	r := e.do("clients", http.MethodGet, "/clients/"+id, nil)
	return expect(t, r, http.StatusOK, ""), r.header.Get("ETag")
}

// A client read with GET can be PUT back as is; a server-owned field
// whose value changed is refused by name and changes nothing.
func TestClientPutAcceptsWhatGetReturns(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		body := webClient("Round trip")
		body["access_token_lifespan"] = "15m"
		body["contacts"] = []string{"ops@example.com"}
		m := expect(t, e.do("clients", http.MethodPost, "/clients", body), http.StatusCreated, "")
		id := m["client_id"].(string)
		got, tag := getClientJSON(t, e, id)
		if got["access_token_lifespan"] != "15m0s" || got["refresh_token_lifespan"] != "0s" {
			t.Fatalf("lifespans not in Go duration syntax: %v / %v", got["access_token_lifespan"], got["refresh_token_lifespan"])
		}

		r := e.do("clients", http.MethodPut, "/clients/"+id, got, "If-Match", tag)
		after := expect(t, r, http.StatusOK, "")
		if r.header.Get("ETag") != `"2"` || after["client_secret"] != nil {
			t.Fatalf("round trip: ETag %q body %s", r.header.Get("ETag"), r.body)
		}
		for _, k := range []string{"client_id", "client_name", "redirect_uris", "grant_types", "response_types", "scope",
			"audience", "token_endpoint_auth_method", "application_type", "contacts", "access_token_lifespan", "owner", "created_at", "disabled"} {
			if !sameJSONValue(got[k], after[k]) {
				t.Errorf("round trip changed %s: %v → %v", k, got[k], after[k])
			}
		}

		// Each changed server-owned field is named; nothing is written.
		got, tag = getClientJSON(t, e, id)
		changed := map[string]any{
			"owner": "someone-else", "disabled": true, "created_at": "2001-01-01T00:00:00Z",
			"updated_at": "2001-01-01T00:00:00Z", "version": 99, "client_id_issued_at": 1, "client_id": "other",
		}
		for field, v := range changed {
			t.Run("case="+field, func(t *testing.T) {
				b := cloneMap(got)
				b[field] = v
				m := expect(t, e.do("clients", http.MethodPut, "/clients/"+id, b, "If-Match", tag), http.StatusBadRequest, "invalid_client_metadata")
				if !hasField(m, field) {
					t.Fatalf("400 does not name %s: %v", field, m)
				}
			})
		}
		// A secret is never returned, so never accepted.
		b := cloneMap(got)
		b["client_secret"] = "chosen-by-caller"
		if m := expect(t, e.do("clients", http.MethodPut, "/clients/"+id, b, "If-Match", tag), http.StatusBadRequest, ""); !hasField(m, "client_secret") {
			t.Fatalf("client_secret not named: %v", m)
		}
		// A time in another zone naming the same instant is unchanged.
		b = cloneMap(got)
		created, err := time.Parse(time.RFC3339Nano, got["created_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		b["created_at"] = created.In(time.FixedZone("x", 3600)).Format(time.RFC3339Nano)
		b["client_name"] = "Renamed"
		m = expect(t, e.do("clients", http.MethodPut, "/clients/"+id, b, "If-Match", tag), http.StatusOK, "")
		if m["client_name"] != "Renamed" {
			t.Fatalf("PUT with the same instant: %v", m)
		}
		if _, tag2 := getClientJSON(t, e, id); tag2 != `"3"` {
			t.Fatalf("refused PUTs wrote: ETag %s", tag2)
		}
	})
}

func cloneMap(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func sameJSONValue(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// PATCH is an RFC 7396 merge patch over what GET shows.
func TestClientMergePatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		body := webClient("Patched")
		body["audience"] = []string{"https://api.example"}
		body["id_token_lifespan"] = "1h"
		m := expect(t, e.do("clients", http.MethodPost, "/clients", body), http.StatusCreated, "")
		id := m["client_id"].(string)
		mp := "application/merge-patch+json"

		// Members replace, null removes (the default comes back), others stay.
		patch := `{"client_name":"Patched v2","id_token_lifespan":null,"grant_types":null,"contacts":["a@example.com"]}`
		r := e.do("clients", http.MethodPatch, "/clients/"+id, patch, "Content-Type", mp, "If-Match", `"1"`)
		m = expect(t, r, http.StatusOK, "")
		if m["client_name"] != "Patched v2" || m["id_token_lifespan"] != "0s" || r.header.Get("ETag") != `"2"` {
			t.Fatalf("patch: %s", r.body)
		}
		if !sameJSONValue(m["grant_types"], []string{"authorization_code", "refresh_token"}) {
			t.Errorf("null grant_types did not restore the default: %v", m["grant_types"])
		}
		if !sameJSONValue(m["audience"], []string{"https://api.example"}) || m["scope"] != "openid read" {
			t.Errorf("untouched members changed: %s", r.body)
		}
		if !sameJSONValue(m["contacts"], []string{"a@example.com"}) {
			t.Errorf("contacts: %v", m["contacts"])
		}
		// Server-owned fields: unchanged is fine, changed is named.
		m = expect(t, e.do("clients", http.MethodPatch, "/clients/"+id, `{"version":2,"client_name":"v3"}`, "Content-Type", mp, "If-Match", `"2"`), http.StatusOK, "")
		if m["client_name"] != "v3" {
			t.Fatalf("patch with unchanged version: %v", m)
		}
		m = expect(t, e.do("clients", http.MethodPatch, "/clients/"+id, `{"disabled":true}`, "Content-Type", mp, "If-Match", `"3"`), http.StatusBadRequest, "")
		if !hasField(m, "disabled") {
			t.Fatalf("disabled not named: %v", m)
		}
		// Validation runs on the result; wrong media type, non-object, stale.
		m = expect(t, e.do("clients", http.MethodPatch, "/clients/"+id, `{"logo_uri":"http://x.example/l.png"}`, "Content-Type", mp, "If-Match", `"3"`), http.StatusBadRequest, "")
		if !hasField(m, "logo_uri") {
			t.Fatalf("logo_uri not named: %v", m)
		}
		m = expect(t, e.do("clients", http.MethodPatch, "/clients/"+id, `{"client_name":"x"}`, "If-Match", `"3"`), http.StatusUnsupportedMediaType, "")
		if !strings.Contains(m["error_description"].(string), mp) {
			t.Errorf("415 does not name the media type: %v", m)
		}
		expect(t, e.do("clients", http.MethodPatch, "/clients/"+id, `["x"]`, "Content-Type", mp, "If-Match", `"3"`), http.StatusBadRequest, "")
		expect(t, e.do("clients", http.MethodPatch, "/clients/"+id, `{"client_name":"x"}`, "Content-Type", mp, "If-Match", `"1"`), http.StatusPreconditionFailed, "precondition_failed")
		expect(t, e.do("clients", http.MethodPatch, "/clients/"+id, `{"client_name":"x"}`, "Content-Type", mp), http.StatusPreconditionRequired, "")
		if _, tag := getClientJSON(t, e, id); tag != `"3"` {
			t.Fatalf("refused patches wrote: ETag %s", tag)
		}
	})
}

// If-Match: a value that is not a quoted entity tag is a 400 saying the
// format; a stale or weak one is 412; none is 428.
func TestIfMatchErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		m := expect(t, e.do("clients", http.MethodPost, "/clients", webClient("If")), http.StatusCreated, "")
		id := m["client_id"].(string)
		upd := webClient("If v2")
		cases := []struct {
			name, value string
			status      int
		}{
			{"case=unquoted", `1`, http.StatusBadRequest},
			{"case=half-quoted", `"1`, http.StatusBadRequest},
			{"case=star", `*`, http.StatusBadRequest},
			{"case=list", `"1", "2"`, http.StatusBadRequest},
			{"case=stale", `"7"`, http.StatusPreconditionFailed},
			{"case=weak", `W/"1"`, http.StatusPreconditionFailed},
			{"case=not-ours", `"abc"`, http.StatusPreconditionFailed},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				m := expect(t, e.do("clients", http.MethodPut, "/clients/"+id, upd, "If-Match", c.value), c.status, "")
				d, _ := m["error_description"].(string)
				if c.status == http.StatusBadRequest && !strings.Contains(d, "double quotes") {
					t.Errorf("400 does not explain the format: %s", d)
				}
				if c.status == http.StatusPreconditionFailed && m["error"] != "precondition_failed" {
					t.Errorf("412 body: %v", m)
				}
			})
		}
		expect(t, e.do("clients", http.MethodPut, "/clients/"+id, upd), http.StatusPreconditionRequired, "precondition_required")
		if c, _ := e.store.ClientByID(context.Background(), id); c.Version != 1 || c.Name != "If" {
			t.Fatalf("a refused PUT wrote: %+v", c)
		}
		expect(t, e.do("clients", http.MethodPut, "/clients/"+id, upd, "If-Match", `"1"`), http.StatusOK, "")
	})
}

// Lifespans are Go duration strings; whole seconds are still read for
// compatibility; anything else is named.
func TestClientLifespanFormats(t *testing.T) {
	e := newEnv(t, newMemory())
	cases := []struct {
		name string
		in   any
		want string
		ok   bool
	}{
		{"case=duration", "90s", "1m30s", true},
		{"case=hours", "720h", "720h0m0s", true},
		{"case=seconds-compat", 300, "5m0s", true},
		{"case=empty-is-default", "", "0s", true},
		{"case=no-unit", "300", "", false},
		{"case=negative", "-5m", "", false},
		{"case=negative-seconds", -5, "", false},
		{"case=too-long", "100000h", "", false},
		{"case=fraction", 1.5, "", false},
		{"case=garbage", "soon", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := webClient("L")
			b["refresh_token_lifespan"] = c.in
			r := e.do("clients", http.MethodPost, "/clients", b)
			if !c.ok {
				m := expect(t, r, http.StatusBadRequest, "invalid_client_metadata")
				if !hasField(m, "refresh_token_lifespan") {
					t.Fatalf("field not named: %s", r.body)
				}
				return
			}
			m := expect(t, r, http.StatusCreated, "")
			if m["refresh_token_lifespan"] != c.want {
				t.Fatalf("stored %v, want %s", m["refresh_token_lifespan"], c.want)
			}
		})
	}
}

func newMemory() *memory.Store { return memory.New(memory.Config{}) }

// A mistyped field is named with the JSON type it needs.
func TestClientWrongTypeNamesJSONType(t *testing.T) {
	e := newEnv(t, newMemory())
	cases := []struct {
		name, body, field, want string
	}{
		{"case=scope-array", `{"scope":["a","b"]}`, "scope", "must be a JSON string"},
		{"case=redirects-string", `{"redirect_uris":"https://a.example/cb"}`, "redirect_uris", "must be a JSON array"},
		{"case=skip-consent-string", `{"skip_consent":"yes"}`, "skip_consent", "must be a JSON boolean"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := expect(t, e.do("clients", http.MethodPost, "/clients", c.body), http.StatusBadRequest, "invalid_client_metadata")
			fs, _ := m["fields"].([]any)
			if len(fs) != 1 || fs[0].(map[string]any)["field"] != c.field || fs[0].(map[string]any)["problem"] != c.want {
				t.Fatalf("%v", m)
			}
		})
	}
}
