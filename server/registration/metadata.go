package registration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/bulwark-auth/bulwark/storage"
)

// Policy is what a registrant may ask for. Empty lists allow nothing.
type Policy struct {
	// Open allows registration without an initial access token.
	Open        bool
	Scopes      []string
	GrantTypes  []string
	AuthMethods []string
}

// DefaultPolicy is the policy when the operator narrows nothing: OpenID
// scopes, the code and client-credentials grants with refresh, and every
// authentication method Bulwark implements.
func DefaultPolicy() Policy {
	return Policy{
		Scopes:      []string{"openid", "profile", "email", "offline_access"},
		GrantTypes:  []string{"authorization_code", "refresh_token", "client_credentials"},
		AuthMethods: slices.Clone(storage.SupportedAuthMethods),
	}
}

// narrowed is the policy for one registration: the operator's, narrowed
// by the initial access token's lists when it has them.
func (p Policy) narrowed(t *storage.InitialAccessToken) Policy {
	out := p
	if t == nil {
		return out
	}
	if len(t.Scopes) > 0 {
		out.Scopes = intersect(p.Scopes, t.Scopes)
	}
	if len(t.GrantTypes) > 0 {
		out.GrantTypes = intersect(p.GrantTypes, t.GrantTypes)
	}
	return out
}

// heldBy is the policy for an RFC 7592 update of client c once its initial
// access token is gone (the janitor removes tokens some time after they
// end): what the token allowed is no longer known, so the client may keep
// at most the scopes and grant types it holds.
func (p Policy) heldBy(c *storage.Client) Policy {
	out := p
	out.Scopes = intersect(p.Scopes, c.Scopes)
	out.GrantTypes = intersect(p.GrantTypes, c.GrantTypes)
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// refusedFields are client metadata a registrant must not set: they grant
// privileges (consent skipped, PKCE off, audiences, longer tokens) or are
// the server's. An admin may set them on a registered client; an update
// through RFC 7592 keeps what the admin set.
var refusedFields = []string{
	"skip_consent", "pkce_optional", "audience",
	"access_token_lifespan", "refresh_token_lifespan", "id_token_lifespan",
	"owner", "disabled", "registered_via", "created_at", "updated_at", "version",
	"software_statement",
}

// ignoredOnUpdate are response fields RFC 7592 §2.2 says a client must not
// send back, and the server must ignore.
var ignoredOnUpdate = []string{"registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at"}

// metadataError is an RFC 7591 §3.2.2 error: invalid_redirect_uri or
// invalid_client_metadata, with a description naming fields, never values.
type metadataError struct {
	code, description string
}

func (e *metadataError) Error() string { return e.code + ": " + e.description }

func badMetadata(format string, args ...any) *metadataError {
	return &metadataError{code: "invalid_client_metadata", description: fmt.Sprintf(format, args...)}
}

// request is a decoded registration or update body.
type request struct {
	spec         storage.ClientSpec
	fields       map[string]json.RawMessage
	clientSecret *string
}

// decode reads one JSON object without duplicate members. Members the
// server does not know are ignored (RFC 7591 §2); refused ones are named.
func decode(body []byte, update bool) (*request, error) {
	fields, err := objectMembers(body)
	if err != nil {
		return nil, err
	}
	req := &request{fields: fields}
	var refused []string
	for _, f := range refusedFields {
		if _, ok := fields[f]; ok {
			refused = append(refused, f)
		}
	}
	if _, ok := fields["client_id"]; ok && !update {
		refused = append(refused, "client_id")
	}
	if len(refused) > 0 {
		return nil, badMetadata("these fields cannot be registered: %s", strings.Join(refused, ", "))
	}
	if raw, ok := fields["client_secret"]; ok {
		if !update {
			return nil, badMetadata("client_secret is issued by the server")
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badMetadata("client_secret must be a string")
		}
		req.clientSecret = &s
		delete(fields, "client_secret")
	}
	if update {
		for _, f := range ignoredOnUpdate {
			delete(fields, f)
		}
	}
	known, err := json.Marshal(fields)
	if err != nil {
		return nil, badMetadata("the body is not valid JSON")
	}
	if err := json.Unmarshal(known, &req.spec); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, badMetadata("%s has the wrong type (%s expected)", te.Field, te.Type.Kind())
		}
		return nil, badMetadata("the client metadata has a value of the wrong type")
	}
	return req, nil
}

// objectMembers splits a body that must be exactly one JSON object into
// its members, refusing a member named twice (which encoding/json would
// silently resolve to the last).
func objectMembers(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, badMetadata("the body must be a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, badMetadata("the body is not valid JSON")
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, badMetadata("the body is not valid JSON")
		}
		if _, dup := out[name]; dup {
			if len(name) > 64 {
				name = name[:64]
			}
			return nil, badMetadata("duplicate member %q", name)
		}
		out[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, badMetadata("the body is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badMetadata("the body must hold exactly one JSON object")
	}
	return out, nil
}

// applyPolicy fills the registration defaults (within pol) for what the
// registrant left out and refuses what pol does not allow, naming every
// problem at once. Redirect URI problems come first, as
// invalid_redirect_uri (RFC 7591 §3.2.2).
func applyPolicy(spec *storage.ClientSpec, fields map[string]json.RawMessage, pol Policy) error {
	native := spec.ApplicationType == storage.AppTypeNative
	var redirect []string
	for i, r := range spec.RedirectURIs {
		if err := storage.ValidateRedirectURI(r, native); err != nil {
			redirect = append(redirect, fmt.Sprintf("redirect_uris[%d]: %s", i, err))
			continue
		}
		// A web app's redirect URIs are https: plain http, even toward
		// loopback, is for native apps (RFC 8252 §7.3).
		if u, _ := url.Parse(r); u.Scheme == "http" && !native {
			redirect = append(redirect, fmt.Sprintf("redirect_uris[%d]: must be https (http to loopback only for application_type native)", i))
		}
	}
	if len(redirect) > 0 {
		return &metadataError{code: "invalid_redirect_uri", description: strings.Join(redirect, "; ")}
	}

	if _, ok := fields["grant_types"]; !ok {
		spec.GrantTypes = intersect(storage.DefaultGrantTypes, pol.GrantTypes)
	}
	if _, ok := fields["scope"]; !ok && slices.Contains(pol.Scopes, "openid") {
		spec.Scopes = storage.SpaceSeparated{"openid"}
	}
	var problems []string
	for _, g := range spec.GrantTypes {
		if !slices.Contains(pol.GrantTypes, g) {
			problems = append(problems, fmt.Sprintf("grant_types: %q is not allowed (allowed: %s)", g, strings.Join(pol.GrantTypes, ", ")))
		}
	}
	if len(spec.GrantTypes) == 0 {
		problems = append(problems, "grant_types: at least one allowed grant type is required")
	}
	for _, s := range spec.Scopes {
		if !slices.Contains(pol.Scopes, s) {
			problems = append(problems, fmt.Sprintf("scope: %q is not allowed (allowed: %s)", s, strings.Join(pol.Scopes, " ")))
		}
	}
	method := spec.TokenEndpointAuthMethod
	if method == "" {
		method = storage.DefaultAuthMethod
	}
	if !slices.Contains(pol.AuthMethods, method) {
		problems = append(problems, fmt.Sprintf("token_endpoint_auth_method: %q is not allowed (allowed: %s)", method, strings.Join(pol.AuthMethods, ", ")))
	}
	if len(problems) > 0 {
		return badMetadata("%s", strings.Join(problems, "; "))
	}
	return nil
}

// URLChecker refuses URLs toward the server's own networks
// (*egress.Client).
type URLChecker interface {
	CheckURL(ctx context.Context, raw string) error
}

// checkURLs refuses registered URLs the server might fetch or show that
// lead to loopback, private, link-local or metadata addresses, after DNS
// resolution (egress), and hosts spelled as numbers that are not a
// canonical IP address (2130706433, 0x7f000001, 127.1): URL parsers and
// resolvers disagree about those, so none is accepted.
func checkURLs(ctx context.Context, eg URLChecker, spec *storage.ClientSpec) error {
	var problems []string
	for _, u := range []struct{ field, raw string }{
		{"jwks_uri", spec.JWKSURI},
		{"logo_uri", spec.LogoURI},
		{"client_uri", spec.ClientURI},
		{"backchannel_logout_uri", spec.BackchannelLogoutURI},
	} {
		if u.raw == "" {
			continue
		}
		parsed, err := url.Parse(u.raw)
		if err != nil {
			problems = append(problems, u.field+": not a valid URI")
			continue
		}
		if numericHost(parsed.Hostname()) {
			problems = append(problems, u.field+": the host is a number but not a canonical IP address")
			continue
		}
		if err := eg.CheckURL(ctx, u.raw); err != nil {
			problems = append(problems, u.field+": must be a public https URL the server may reach")
		}
	}
	if len(problems) > 0 {
		return badMetadata("%s", strings.Join(problems, "; "))
	}
	return nil
}

// numericHost reports whether host ends in a numeric label (decimal,
// octal or 0x hex), as the WHATWG URL standard reads an IPv4 address,
// without being a canonical IP address.
func numericHost(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := labels[len(labels)-1]
	if last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}
