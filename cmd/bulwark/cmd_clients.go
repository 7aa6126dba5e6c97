package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

// clientFlags are the client metadata flags of create and update, bound to
// one admin.ClientInput. update applies only the flags given.
type clientFlags struct {
	in                                          admin.ClientInput
	scopes                                      string
	accessLifespan, refreshLifespan, idLifespan time.Duration
}

func (f *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.in.Name, "name", "", "client_name")
	fs.StringSliceVar(&f.in.RedirectURIs, "redirect-uri", nil, "redirect URI (repeat or comma-separate)")
	fs.StringSliceVar(&f.in.GrantTypes, "grant-type", nil, "grant type: authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:token-exchange (repeatable)")
	fs.StringSliceVar(&f.in.ResponseTypes, "response-type", nil, "response type (repeatable)")
	fs.StringVar(&f.scopes, "scope", "", "scopes the client may request (space- or comma-separated)")
	fs.StringSliceVar(&f.in.Audience, "audience", nil, "audiences the client may request (repeatable)")
	fs.StringVar(&f.in.TokenEndpointAuthMethod, "auth-method", "", "token_endpoint_auth_method: client_secret_basic, client_secret_post, private_key_jwt or none")
	fs.StringVar(&f.in.ApplicationType, "application-type", "", "web or native")
	fs.StringVar(&f.in.ClientURI, "client-uri", "", "client home page")
	fs.StringVar(&f.in.LogoURI, "logo-uri", "", "client logo")
	fs.StringSliceVar(&f.in.Contacts, "contact", nil, "contact email (repeatable)")
	fs.BoolVar(&f.in.SkipConsent, "skip-consent", false, "first-party client: do not ask users for consent")
	fs.BoolVar(&f.in.PKCEOptional, "pkce-optional", false, "do not require PKCE (legacy confidential clients only)")
	fs.StringSliceVar(&f.in.AllowedCORSOrigins, "cors-origin", nil, `browser origin allowed to call the token, userinfo and revocation endpoints (repeatable; "+" = the redirect URIs' origins)`)
	fs.BoolVar(&f.in.DPoPBoundAccessTokens, "dpop-bound", false, "require DPoP-bound access tokens (RFC 9449)")
	fs.StringVar(&f.in.BackchannelLogoutURI, "backchannel-logout-uri", "", "where logout tokens are sent (OIDC Back-Channel Logout)")
	fs.BoolVar(&f.in.BackchannelLogoutSessionRequired, "backchannel-logout-session-required", false, "logout tokens carry the sid claim")
	fs.StringVar(&f.in.IDTokenSignedResponseAlg, "id-token-alg", "", `this client's ID token algorithm (id_token_signed_response_alg): RS256, ES256 or EdDSA, one the server keeps keys for; "" = the server's default`)
	fs.DurationVar(&f.accessLifespan, "access-token-lifespan", 0, "access token lifetime for this client (0 = server default)")
	fs.DurationVar(&f.refreshLifespan, "refresh-token-lifespan", 0, "refresh token lifetime for this client (0 = server default)")
	fs.DurationVar(&f.idLifespan, "id-token-lifespan", 0, "ID token lifetime for this client (0 = server default)")
}

// overlay copies the flags given on the command line onto in.
func (f *clientFlags) overlay(fs *pflag.FlagSet, in *admin.ClientInput) {
	fs.Visit(func(fl *pflag.Flag) {
		switch fl.Name {
		case "name":
			in.Name = f.in.Name
		case "redirect-uri":
			in.RedirectURIs = f.in.RedirectURIs
		case "grant-type":
			in.GrantTypes = f.in.GrantTypes
		case "response-type":
			in.ResponseTypes = f.in.ResponseTypes
		case "scope":
			in.Scopes = splitList(f.scopes)
		case "audience":
			in.Audience = f.in.Audience
		case "auth-method":
			in.TokenEndpointAuthMethod = f.in.TokenEndpointAuthMethod
		case "application-type":
			in.ApplicationType = f.in.ApplicationType
		case "client-uri":
			in.ClientURI = f.in.ClientURI
		case "logo-uri":
			in.LogoURI = f.in.LogoURI
		case "contact":
			in.Contacts = f.in.Contacts
		case "skip-consent":
			in.SkipConsent = f.in.SkipConsent
		case "pkce-optional":
			in.PKCEOptional = f.in.PKCEOptional
		case "cors-origin":
			in.AllowedCORSOrigins = f.in.AllowedCORSOrigins
		case "dpop-bound":
			in.DPoPBoundAccessTokens = f.in.DPoPBoundAccessTokens
		case "backchannel-logout-uri":
			in.BackchannelLogoutURI = f.in.BackchannelLogoutURI
		case "backchannel-logout-session-required":
			in.BackchannelLogoutSessionRequired = f.in.BackchannelLogoutSessionRequired
		case "id-token-alg":
			in.IDTokenSignedResponseAlg = f.in.IDTokenSignedResponseAlg
		case "access-token-lifespan":
			in.AccessTokenLifespan = storage.Duration(f.accessLifespan)
		case "refresh-token-lifespan":
			in.RefreshTokenLifespan = storage.Duration(f.refreshLifespan)
		case "id-token-lifespan":
			in.IDTokenLifespan = storage.Duration(f.idLifespan)
		}
	})
}

func (c *cli) clientsCmd() *cobra.Command {
	var cf clientFlags
	create := &cobra.Command{
		Use:   "create",
		Short: "Register a client and print its secret once",
		Long: `Register an OAuth client. Omitted fields take the same defaults as in the
admin API (RFC 7591 §2). A confidential client's secret is generated and
printed once.`,
		Example: `  bulwark clients create --id billing --name Billing --grant-type client_credentials --scope "api:read api:write"
  bulwark clients create --name "Web app" --redirect-uri https://app.example.com/callback --scope "openid profile"`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			in := admin.ClientInput{ID: cf.in.ID}
			cf.overlay(cmd.Flags(), &in)
			cl, secret, err := svc.CreateClient(cmd.Context(), operator(), in)
			if err != nil {
				return err
			}
			return c.printSecret("created client "+cl.ID, secret)
		},
	}
	create.Flags().StringVar(&cf.in.ID, "id", "", "client_id (default: generated)")
	cf.register(create.Flags())

	list := &cobra.Command{
		Use:   "list",
		Short: "List clients",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			clients, err := svc.ListClients(cmd.Context(), storage.ListOptions{Limit: 1000})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "CLIENT ID\tNAME\tAUTH METHOD\tGRANT TYPES\tSCOPE\tSTATUS")
			for _, cl := range clients {
				status := "active"
				if cl.Disabled {
					status = "disabled"
				}
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cl.ID, cmpOr(cl.Name, "-"), cl.TokenEndpointAuthMethod, strings.Join(cl.GrantTypes, ","), cmpOr(strings.Join(cl.Scopes, " "), "-"), status)
			}
			return tw.Flush()
		},
	}

	get := &cobra.Command{
		Use:     "get CLIENT_ID",
		Short:   "Show a client",
		Example: "  bulwark clients get billing",
		Args:    exactArgs("client_id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			cl, err := svc.GetClient(cmd.Context(), args[0])
			if err != nil {
				return named("client", args[0], err)
			}
			return c.printClient(cl)
		},
	}

	var uf clientFlags
	update := &cobra.Command{
		Use:   "update CLIENT_ID",
		Short: "Change the given fields of a client; others stay as they are",
		Example: `  bulwark clients update billing --scope "api:read"
  bulwark clients update web --redirect-uri https://app.example.com/cb --redirect-uri https://app.example.com/cb2`,
		Args: exactArgs("client_id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			cur, err := svc.GetClient(cmd.Context(), args[0])
			if err != nil {
				return named("client", args[0], err)
			}
			in := admin.InputFromClient(cur)
			uf.overlay(cmd.Flags(), &in)
			cl, secret, err := svc.UpdateClient(cmd.Context(), operator(), args[0], in, cur.Version)
			if err != nil {
				return err
			}
			return c.printSecret("updated client "+cl.ID, secret)
		},
	}
	uf.register(update.Flags())

	del := &cobra.Command{
		Use:     "delete CLIENT_ID",
		Short:   "Delete a client",
		Example: "  bulwark clients delete billing",
		Args:    exactArgs("client_id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			if err := svc.DeleteClient(cmd.Context(), operator(), args[0]); err != nil {
				return named("client", args[0], err)
			}
			_, err = fmt.Fprintf(c.stdout, "deleted client %s\n", args[0])
			return err
		},
	}

	rotate := &cobra.Command{
		Use:     "rotate-secret CLIENT_ID",
		Short:   "Issue a new client secret and print it once; the old one works for --client-secret-overlap",
		Example: "  bulwark clients rotate-secret billing",
		Args:    exactArgs("client_id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			cl, secret, err := svc.RotateClientSecret(cmd.Context(), operator(), args[0])
			if err != nil {
				return named("client", args[0], err)
			}
			return c.printSecret(fmt.Sprintf("rotated the secret of client %s; the old secret works for %s more", cl.ID, c.cfg.SecretOverlap), secret)
		},
	}
	return group("clients", "Manage OAuth clients", create, list, get, update, del, rotate)
}

// printSecret prints what happened and, when there is one, the secret
// with the warning that it is shown once.
func (c *cli) printSecret(what, secret string) error {
	if secret == "" {
		_, err := fmt.Fprintln(c.stdout, what)
		return err
	}
	_, err := fmt.Fprintf(c.stdout, "%s\n\n  client_secret: %s\n\nThis is the only time the secret is shown. Store it in a secret manager.\n", what, secret)
	return err
}

// printClient shows a client's metadata, durations in the one format of
// the configuration (10m, 720h).
func (c *cli) printClient(cl *storage.Client) error {
	dur := func(d time.Duration) string {
		if d == 0 {
			return "server default"
		}
		return d.String()
	}
	list := func(s []string) string { return cmpOr(strings.Join(s, " "), "-") }
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"client_id", cl.ID}, {"client_name", cmpOr(cl.Name, "-")}, {"disabled", fmt.Sprint(cl.Disabled)},
		{"token_endpoint_auth_method", cl.TokenEndpointAuthMethod}, {"application_type", cl.ApplicationType},
		{"grant_types", list(cl.GrantTypes)}, {"response_types", list(cl.ResponseTypes)},
		{"redirect_uris", list(cl.RedirectURIs)}, {"scope", list(cl.Scopes)}, {"audience", list(cl.Audience)},
		{"skip_consent", fmt.Sprint(cl.SkipConsent)}, {"pkce_optional", fmt.Sprint(cl.PKCEOptional)},
		{"allowed_cors_origins", list(cl.AllowedCORSOrigins)}, {"dpop_bound_access_tokens", fmt.Sprint(cl.DPoPBoundAccessTokens)},
		{"backchannel_logout_uri", cmpOr(cl.BackchannelLogoutURI, "-")},
		{"backchannel_logout_session_required", fmt.Sprint(cl.BackchannelLogoutSessionRequired)},
		{"id_token_signed_response_alg", cmpOr(cl.IDTokenSignedResponseAlg, "(server default)")},
		{"access_token_lifespan", dur(cl.AccessTokenLifespan)}, {"refresh_token_lifespan", dur(cl.RefreshTokenLifespan)},
		{"id_token_lifespan", dur(cl.IDTokenLifespan)}, {"created_at", ts(cl.CreatedAt)}, {"updated_at", ts(cl.UpdatedAt)},
	} {
		_, _ = fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}
