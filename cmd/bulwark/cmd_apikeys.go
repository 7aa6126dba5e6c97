package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/server/audit"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres"
)

// apiKeys opens the database and the API key service with the shared
// configuration (rotation and grace defaults included).
func (c *cli) apiKeys(ctx context.Context) (*postgres.Store, *apikeys.Service, error) {
	if err := c.require(needDB | needSecret); err != nil {
		return nil, nil, err
	}
	db, err := c.openDB(ctx)
	if err != nil {
		return nil, nil, err
	}
	box, err := secretbox.New(c.cfg.Secrets)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("master secret: %w", err)
	}
	h, err := hash.New(hash.DefaultParams())
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	svc, err := apikeys.New(apikeys.Config{Store: db, Locker: db, Notifier: db, Sealer: box,
		Hasher: hash.NewCached(h, hash.CacheConfig{}), Logger: discardLogger(), Audit: audit.NewSink(db, discardLogger(), nil).Record,
		DefaultRotation: c.cfg.APIKeyRotation, DefaultGrace: c.cfg.APIKeyGrace})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, svc, nil
}

func (c *cli) apikeysCmd() *cobra.Command {
	var (
		name, ownerType, ownerID, scopes string
		expiresIn, rotation, grace       time.Duration
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API key and print it once",
		Example: `  bulwark apikeys create --name orders-api --owner-type service --owner-id orders --scopes introspect
  bulwark apikeys create --name ops --owner-id ops --scopes admin:clients:read,admin:audit:read --expires-in 720h`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, svc, err := c.apiKeys(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			token, k, err := svc.Create(cmd.Context(), apikeys.CreateRequest{Name: name, OwnerType: ownerType, OwnerID: ownerID,
				Scopes: splitList(scopes), ExpiresIn: expiresIn, RotationPeriod: rotation, GracePeriod: grace, CreatedBy: actor()})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "created API key %s (%s), rotates at %s\n\n  %s\n\nThis is the only time the key is shown. Store it in a secret manager.\n", k.ID, k.Name, ts(k.RotateAt), token)
			return err
		},
	}
	f := create.Flags()
	f.StringVar(&name, "name", "", "a name for the key (required)")
	f.StringVar(&ownerType, "owner-type", "service", "client, user or service")
	f.StringVar(&ownerID, "owner-id", "", "the owner's id (required)")
	f.StringVar(&scopes, "scopes", "", "space- or comma-separated scopes ("+strings.Join(apikeys.AllScopes, ", ")+")")
	f.DurationVar(&expiresIn, "expires-in", 0, "hard expiry (0 = none)")
	f.DurationVar(&rotation, "rotation-period", 0, "rotation period (0 = --apikey-rotation-period)")
	f.DurationVar(&grace, "grace-period", 0, "grace period after rotation (0 = --apikey-grace-period)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (never the keys themselves)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, svc, err := c.apiKeys(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			list, err := svc.List(cmd.Context(), storage.ListOptions{})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "ID\tNAME\tOWNER\tSTATUS\tSCOPES\tROTATES\tEXPIRES\tLAST USED")
			for _, k := range list {
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s:%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.OwnerType, k.OwnerID, k.Status, strings.Join(k.Scopes, " "), ts(k.RotateAt), ts(k.ExpiresAt), ts(k.LastUsedAt))
			}
			return tw.Flush()
		},
	}

	rotate := &cobra.Command{
		Use:   "rotate ID",
		Short: "Issue the successor of an API key now and print it once",
		Long: `Issue the successor of API key ID and print it once; the old key keeps
working for its grace period. The master secret must open the stored
signing keys first, so a mistyped secret writes nothing.`,
		Example: "  bulwark apikeys rotate 01J…",
		Args:    exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, svc, err := c.apiKeys(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			ring, err := c.ring(cmd.Context(), db)
			if err != nil {
				return err
			}
			if err := ring.CheckSecret(cmd.Context()); err != nil {
				return errWrongSecret(err)
			}
			token, k, err := svc.Rotate(cmd.Context(), args[0], actor())
			if err != nil {
				return named("API key", args[0], err)
			}
			_, err = fmt.Fprintf(c.stdout, "rotated: new key %s\n\n  %s\n\nThe old key keeps working until its grace period ends.\n", k.ID, token)
			return err
		},
	}

	revoke := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an API key on every replica",
		Example: "  bulwark apikeys revoke 01J…",
		Args:    exactArgs("id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, svc, err := c.apiKeys(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			if err := svc.Revoke(cmd.Context(), args[0], actor()); err != nil {
				return named("API key", args[0], err)
			}
			_, err = fmt.Fprintf(c.stdout, "revoked %s: refused on every replica within seconds\n", args[0])
			return err
		},
	}
	return group("apikeys", "Manage API keys", create, list, rotate, revoke)
}

// splitList splits a space- or comma-separated list.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}
