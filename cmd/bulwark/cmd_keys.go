package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-auth/bulwark/storage"
)

func (c *cli) keysCmd() *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List signing keys and their states",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.require(needDB); err != nil {
				return err
			}
			db, err := c.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			list, err := db.ListSigningKeys(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATES/ACTIVATED\tRETIRED\tREVOKED")
			for _, k := range list {
				act := k.ActivatedAt
				if k.State == storage.KeyNext {
					act = k.ActivateAt
				}
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Algorithm, k.State, ts(k.CreatedAt), ts(act), ts(k.RetiredAt), ts(k.RevokedAt))
			}
			return tw.Flush()
		},
	}

	var force bool
	rotate := &cobra.Command{
		Use:   "rotate [ALG]",
		Short: "Activate the next signing key now (respecting the lead time unless --force)",
		Long: `Make the published next key of ALG (default: the first of --signing-algs)
the active key; the active key retires and stays in the JWKS for
--key-retention. The next key must have been published for --key-lead-time,
so resource servers caching the JWKS already know it; --force skips that
check (emergency use: caches older than the key reject its tokens until they
refetch the JWKS).

The master secret must open every stored key first; with a wrong secret
nothing is written.`,
		Example: "  bulwark keys rotate ES256\n  bulwark keys rotate RS256 --force",
		Args:    maxArgs("alg"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.require(needDB | needSecret); err != nil {
				return err
			}
			db, err := c.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			ring, err := c.ring(cmd.Context(), db)
			if err != nil {
				return err
			}
			alg := ring.DefaultAlgorithm()
			if len(args) == 1 {
				alg = args[0]
			}
			if force {
				_, _ = fmt.Fprintf(c.stderr, "warning: --force activates the next %s key without waiting for the lead time; resource servers whose JWKS cache (up to %s) predates it reject its tokens until they refetch\n", alg, c.cfg.JWKSMaxAge)
				err = ring.Rotate(cmd.Context(), alg, actor())
			} else {
				err = ring.Advance(cmd.Context(), alg, actor())
			}
			if err != nil {
				return errWrongSecret(err)
			}
			_, err = fmt.Fprintf(c.stdout, "rotated %s: the next key is now active; every replica picks it up within seconds\n", alg)
			return err
		},
	}
	rotate.Flags().BoolVar(&force, "force", false, "activate even if the next key was published less than --key-lead-time ago")

	revoke := &cobra.Command{
		Use:     "revoke KID",
		Short:   "Remove a key from the JWKS at once; tokens it signed stop validating",
		Example: "  bulwark keys revoke 3f2a…",
		Args:    exactArgs("kid"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.require(needDB | needSecret); err != nil {
				return err
			}
			db, err := c.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			ring, err := c.ring(cmd.Context(), db)
			if err != nil {
				return err
			}
			if err := ring.Revoke(cmd.Context(), args[0], actor()); err != nil {
				return named("signing key (or it is revoked already)", args[0], err)
			}
			_, err = fmt.Fprintf(c.stdout, "revoked %s: removed from JWKS; tokens it signed are inactive\n", args[0])
			return err
		},
	}

	reseal := &cobra.Command{
		Use:   "reseal",
		Short: "Re-encrypt signing keys under the newest master secret",
		Long: `Re-encrypt every signing key not sealed under the newest master secret
(the first of BULWARK_SECRET, or the first line of BULWARK_SECRET_FILE), so
an older secret can be removed. Revoked keys are skipped. If the listed
secrets do not open every stored key, nothing is written.`,
		Example: "  BULWARK_SECRET=\"$NEW,$OLD\" bulwark keys reseal",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.require(needDB | needSecret); err != nil {
				return err
			}
			db, err := c.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			ring, err := c.ring(cmd.Context(), db)
			if err != nil {
				return err
			}
			n, err := ring.Reseal(cmd.Context())
			if err != nil {
				return errWrongSecret(err)
			}
			_, err = fmt.Fprintf(c.stdout, "resealed %d key(s) under the newest master secret\n", n)
			return err
		},
	}
	return group("keys", "Manage signing keys", list, rotate, revoke, reseal)
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
