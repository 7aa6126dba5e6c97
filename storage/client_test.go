package storage

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestNormalizeDefaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   ClientSpec
		want ClientSpec
	}{
		{"case=empty", ClientSpec{}, ClientSpec{
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			TokenEndpointAuthMethod: AuthMethodSecretBasic, ApplicationType: AppTypeWeb,
		}},
		{"case=client-credentials-has-no-response-type", ClientSpec{GrantTypes: []string{"client_credentials"}}, ClientSpec{
			GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: AuthMethodSecretBasic, ApplicationType: AppTypeWeb,
		}},
		{"case=explicit-values-kept", ClientSpec{
			GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: AuthMethodNone, ApplicationType: AppTypeNative,
		}, ClientSpec{
			GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: AuthMethodNone, ApplicationType: AppTypeNative,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cl Client
			c.in.ApplyTo(&cl)
			got, _ := json.Marshal(cl.Spec())
			want, _ := json.Marshal(c.want)
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
	// The defaults are copies: changing a stored client never changes them.
	var cl Client
	ClientSpec{}.ApplyTo(&cl)
	cl.GrantTypes[0] = "changed"
	if DefaultGrantTypes[0] != "authorization_code" {
		t.Fatal("Normalize shares its default slice")
	}
}

func TestClientSpecJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		ok       bool
		access   time.Duration
		scopes   []string
	}{
		{"case=duration-string", `{"access_token_lifespan":"15m","scope":"a b"}`, true, 15 * time.Minute, []string{"a", "b"}},
		{"case=seconds-compat", `{"access_token_lifespan":90}`, true, 90 * time.Second, nil},
		{"case=empty-string", `{"access_token_lifespan":""}`, true, 0, nil},
		{"case=scope-spaces", `{"scope":"  a   b "}`, true, 0, []string{"a", "b"}},
		{"case=no-unit", `{"access_token_lifespan":"90"}`, false, 0, nil},
		{"case=fraction", `{"access_token_lifespan":1.5}`, false, 0, nil},
		{"case=negative-seconds", `{"access_token_lifespan":-1}`, false, 0, nil},
		{"case=huge-seconds", `{"access_token_lifespan":99999999999999}`, false, 0, nil},
		{"case=scope-array", `{"scope":["a"]}`, false, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s ClientSpec
			err := json.Unmarshal([]byte(c.in), &s)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok %v", err, c.ok)
			}
			if !c.ok {
				return
			}
			if time.Duration(s.AccessTokenLifespan) != c.access || !slices.Equal([]string(s.Scopes), c.scopes) {
				t.Fatalf("decoded %v %q", time.Duration(s.AccessTokenLifespan), s.Scopes)
			}
			// Written back as strings, and read again to the same value.
			b, _ := json.Marshal(s)
			var again ClientSpec
			if err := json.Unmarshal(b, &again); err != nil || again.AccessTokenLifespan != s.AccessTokenLifespan {
				t.Fatalf("round trip %s: %v", b, err)
			}
		})
	}
}

func TestValidateLifespanBounds(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{-time.Second, MaxLifespan + time.Second} {
		c := &Client{ID: "c", TokenEndpointAuthMethod: AuthMethodSecretBasic, GrantTypes: []string{"client_credentials"}, IDTokenLifespan: d}
		var v *ValidationError
		if err := c.Validate(nil); err == nil || !errors.As(err, &v) || v.Problems[0].Field != "id_token_lifespan" {
			t.Errorf("%s: %v", d, err)
		}
	}
}
