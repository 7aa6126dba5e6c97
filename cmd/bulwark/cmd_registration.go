package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

// registrationTokensCmd manages initial access tokens for dynamic client
// registration (serve --registration).
func (c *cli) registrationTokensCmd() *cobra.Command {
	var (
		in        admin.InitialTokenInput
		scope     string
		expiresIn time.Duration
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Issue an initial access token for dynamic client registration and print it once",
		Long: `Issue an initial access token (RFC 7591 §3). A registrant presents it as
"Authorization: Bearer bwi_…" at POST /oauth2/register (serve --registration).
Each registration uses it once; it stops working after --max-clients
registrations (deleting a registered client gives no use back), at expiry,
or when revoked. An ended token stays listed for
--registration-token-retention, then the janitor deletes it.`,
		Example: `  bulwark registration-tokens create --description "partner Acme" --max-clients 1 --expires-in 24h
  bulwark registration-tokens create --description "CI fleet" --max-clients 50 --scope "openid" --grant-type authorization_code`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			in.Scopes = splitList(scope)
			in.ExpiresIn = storage.Duration(expiresIn)
			t, token, err := svc.CreateInitialAccessToken(cmd.Context(), operator(), in)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "created initial access token %s (max %d clients, expires %s)\n\n  token: %s\n\nThis is the only time the token is shown.\n",
				t.ID, t.MaxClients, t.ExpiresAt.Format(time.RFC3339), token)
			return err
		},
	}
	create.Flags().StringVar(&in.Description, "description", "", "what the token is for")
	create.Flags().StringVar(&scope, "scope", "", "scopes registered clients may get (space- or comma-separated; default: the registration policy's)")
	create.Flags().StringSliceVar(&in.GrantTypes, "grant-type", nil, "grant types registered clients may get (repeatable; default: the registration policy's)")
	create.Flags().IntVar(&in.MaxClients, "max-clients", 1, "how many registrations the token allows (1: single use); deleting a client gives none back")
	create.Flags().DurationVar(&expiresIn, "expires-in", admin.DefaultInitialTokenLife, "lifetime of the token")

	list := &cobra.Command{
		Use:   "list",
		Short: "List initial access tokens",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			ts, err := svc.ListInitialAccessTokens(cmd.Context(), storage.ListOptions{Limit: admin.MaxPageSize})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "ID\tDESCRIPTION\tREGISTERED\tEXPIRES\tSCOPE\tSTATUS")
			now := time.Now()
			for _, t := range ts {
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", t.ID, cmpOr(t.Description, "-"), t.Registered, t.MaxClients,
					t.ExpiresAt.Format(time.RFC3339), cmpOr(strings.Join(t.Scopes, " "), "(policy)"), t.Status(now))
			}
			return tw.Flush()
		},
	}

	revoke := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an initial access token; clients it registered stay",
		Example: "  bulwark registration-tokens revoke 3f2a…",
		Args:    exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			if _, err := svc.RevokeInitialAccessToken(cmd.Context(), operator(), args[0]); err != nil {
				return named("initial access token", args[0], err)
			}
			_, err = fmt.Fprintf(c.stdout, "revoked initial access token %s\n", args[0])
			return err
		},
	}
	return group("registration-tokens", "Manage initial access tokens for dynamic client registration", create, list, revoke)
}
