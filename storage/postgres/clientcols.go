package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/jackc/pgx/v5"

	"github.com/bulwark-auth/bulwark/storage"
)

// clientColumn is one column of the clients table and the value that stands
// in for it when a LEFT JOIN finds no client.
type clientColumn struct{ name, zero string }

var clientColumns = []clientColumn{
	{"id", "''"},
	{"secret_hash", "''"},
	{"rotated_secrets", "'[]'::jsonb"},
	{"name", "''"},
	{"redirect_uris", "'{}'::text[]"},
	{"grant_types", "'{}'::text[]"},
	{"response_types", "'{}'::text[]"},
	{"scopes", "'{}'::text[]"},
	{"audience", "'{}'::text[]"},
	{"token_endpoint_auth_method", "''"},
	{"token_endpoint_auth_signing_alg", "''"},
	{"jwks", "NULL"},
	{"request_object_signing_alg", "''"},
	{"application_type", "''"},
	{"logo_uri", "''"},
	{"client_uri", "''"},
	{"contacts", "'{}'::text[]"},
	{"skip_consent", "false"},
	{"pkce_optional", "false"},
	{"access_token_lifespan_ns", "0"},
	{"refresh_token_lifespan_ns", "0"},
	{"id_token_lifespan_ns", "0"},
	{"allowed_cors_origins", "'{}'::text[]"},
	{"dpop_bound_access_tokens", "false"},
	{"backchannel_logout_uri", "''"},
	{"backchannel_logout_session_required", "false"},
	{"jwks_uri", "''"},
	{"registered_via", "''"},
	{"id_token_signed_response_alg", "''"},
	{"owner", "''"},
	{"disabled", "false"},
	{"created_at", "'epoch'::timestamptz"},
	{"updated_at", "'epoch'::timestamptz"},
	{"version", "0"},
}

// clientSelect lists the client columns for a plain SELECT FROM clients;
// clientJoinSelect lists them for "LEFT JOIN clients c", with NULLs replaced
// so one scan function serves both.
var (
	clientSelect     string
	clientJoinSelect string
	clientInsertCols string
	clientInsertArgs string
	clientUpdateSet  string
)

func init() {
	var sel, join, args, set []string
	for i, c := range clientColumns {
		sel = append(sel, c.name)
		join = append(join, fmt.Sprintf("COALESCE(c.%s, %s)", c.name, c.zero))
		args = append(args, fmt.Sprintf("$%d", i+1))
		if updatable(c.name) {
			// $1 is the id; updatable columns follow in order.
			set = append(set, fmt.Sprintf("%s = $%d", c.name, len(set)+2))
		}
	}
	clientSelect = strings.Join(sel, ", ")
	clientJoinSelect = strings.Join(join, ", ")
	clientInsertCols = clientSelect
	clientInsertArgs = strings.Join(args, ", ")
	clientUpdateSet = strings.Join(set, ", ")
}

// updatable reports whether UpdateClient replaces the column: identity,
// creation time and version (bumped separately) are never replaced.
func updatable(col string) bool {
	return col != "id" && col != "created_at" && col != "version"
}

// clientUpdateArgs returns the id followed by the updatable values of c, in
// the order clientUpdateSet numbers them.
func clientUpdateArgs(c *storage.Client) ([]any, error) {
	all, err := clientArgs(c)
	if err != nil {
		return nil, err
	}
	out := []any{c.ID}
	for i, col := range clientColumns {
		if updatable(col.name) {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// clientArgs returns the values of c in clientColumns order.
func clientArgs(c *storage.Client) ([]any, error) {
	rotated := c.RotatedSecrets
	if rotated == nil {
		rotated = []storage.RotatedSecret{}
	}
	rot, err := json.Marshal(rotated)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode rotated secrets: %w", err)
	}
	var jwks []byte
	if c.JWKS != nil {
		if jwks, err = json.Marshal(c.JWKS); err != nil {
			return nil, fmt.Errorf("postgres: encode client jwks: %w", err)
		}
	}
	return []any{
		c.ID, c.SecretHash, rot, c.Name,
		nonNil(c.RedirectURIs), nonNil(c.GrantTypes), nonNil(c.ResponseTypes), nonNil(c.Scopes), nonNil(c.Audience),
		c.TokenEndpointAuthMethod, c.TokenEndpointAuthSigningAlg, jwks, c.RequestObjectSigningAlg,
		c.ApplicationType, c.LogoURI, c.ClientURI, nonNil(c.Contacts),
		c.SkipConsent, c.PKCEOptional,
		int64(c.AccessTokenLifespan), int64(c.RefreshTokenLifespan), int64(c.IDTokenLifespan),
		nonNil(c.AllowedCORSOrigins), c.DPoPBoundAccessTokens, c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired,
		c.JWKSURI, c.RegisteredVia, c.IDTokenSignedResponseAlg,
		c.Owner, c.Disabled, c.CreatedAt, c.UpdatedAt, c.Version,
	}, nil
}

// clientScan holds scan destinations for one client row.
type clientScan struct {
	c                  storage.Client
	rotated, jwks      []byte
	atl, rtl, idtl     int64
	createdAt, updated time.Time
}

func (cs *clientScan) dest() []any {
	c := &cs.c
	return []any{
		&c.ID, &c.SecretHash, &cs.rotated, &c.Name,
		&c.RedirectURIs, &c.GrantTypes, &c.ResponseTypes, &c.Scopes, &c.Audience,
		&c.TokenEndpointAuthMethod, &c.TokenEndpointAuthSigningAlg, &cs.jwks, &c.RequestObjectSigningAlg,
		&c.ApplicationType, &c.LogoURI, &c.ClientURI, &c.Contacts,
		&c.SkipConsent, &c.PKCEOptional,
		&cs.atl, &cs.rtl, &cs.idtl,
		&c.AllowedCORSOrigins, &c.DPoPBoundAccessTokens, &c.BackchannelLogoutURI, &c.BackchannelLogoutSessionRequired,
		&c.JWKSURI, &c.RegisteredVia, &c.IDTokenSignedResponseAlg,
		&c.Owner, &c.Disabled, &cs.createdAt, &cs.updated, &c.Version,
	}
}

func (cs *clientScan) client() (*storage.Client, error) {
	c := cs.c
	c.AccessTokenLifespan = time.Duration(cs.atl)
	c.RefreshTokenLifespan = time.Duration(cs.rtl)
	c.IDTokenLifespan = time.Duration(cs.idtl)
	c.CreatedAt, c.UpdatedAt = cs.createdAt, cs.updated
	// Empty arrays come back as nil, as Client.Clone returns them.
	c.RedirectURIs, c.GrantTypes, c.ResponseTypes = nilIfEmpty(c.RedirectURIs), nilIfEmpty(c.GrantTypes), nilIfEmpty(c.ResponseTypes)
	c.Scopes, c.Audience, c.Contacts = nilIfEmpty(c.Scopes), nilIfEmpty(c.Audience), nilIfEmpty(c.Contacts)
	c.AllowedCORSOrigins = nilIfEmpty(c.AllowedCORSOrigins)
	if len(cs.rotated) > 0 {
		if err := json.Unmarshal(cs.rotated, &c.RotatedSecrets); err != nil {
			return nil, fmt.Errorf("postgres: decode rotated secrets: %w", err)
		}
		if len(c.RotatedSecrets) == 0 {
			c.RotatedSecrets = nil
		}
	}
	if len(cs.jwks) > 0 {
		var ks jose.JSONWebKeySet
		if err := json.Unmarshal(cs.jwks, &ks); err != nil {
			return nil, fmt.Errorf("postgres: decode client jwks: %w", err)
		}
		c.JWKS = &ks
	}
	return &c, nil
}

func scanClient(row pgx.Row) (*storage.Client, error) {
	var cs clientScan
	if err := row.Scan(cs.dest()...); err != nil {
		return nil, err
	}
	return cs.client()
}
