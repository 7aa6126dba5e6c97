package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres"
	"github.com/sirupsen/logrus"
)

// openDB opens Postgres from --database-url or DATABASE_URL for the
// operational commands.
func openDB(ctx context.Context, fs *flag.FlagSet, args []string) (*postgres.Store, []string, error) {
	dsn := fs.String("database-url", os.Getenv("DATABASE_URL"), "Postgres connection URL")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if *dsn == "" {
		return nil, nil, errors.New("DATABASE_URL (or --database-url) is required")
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	s, err := postgres.Open(ctx, postgres.Config{DSN: *dsn, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	return s, fs.Args(), nil
}

func cmdMigrate(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	db, rest, err := openDB(ctx, fs, args)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(rest) != 1 {
		return usageError{"migrate needs up or status"}
	}
	switch rest[0] {
	case "up":
		applied, err := postgres.MigrateUp(ctx, db.Pool())
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			_, err = fmt.Fprintln(out, "database is up to date")
			return err
		}
		for _, m := range applied {
			if _, err := fmt.Fprintln(out, "applied", m); err != nil {
				return err
			}
		}
		return nil
	case "status":
		states, err := postgres.MigrationStatus(ctx, db.Pool())
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "MIGRATION\tSTATE\tAPPLIED AT")
		for _, s := range states {
			state, at := "pending", ""
			if s.Applied {
				state, at = "applied", s.AppliedAt.UTC().Format(time.RFC3339)
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, state, at)
		}
		return tw.Flush()
	}
	return usageError{"migrate needs up or status"}
}

func cmdJanitor(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("janitor", flag.ContinueOnError)
	batch := fs.Int("batch", 1000, "rows per delete statement")
	auditRetention := fs.Duration("audit-retention", envDuration("BULWARK_AUDIT_RETENTION", 365*24*time.Hour), "how long audit events are kept")
	db, _, err := openDB(ctx, fs, args)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	n, err := db.DeleteExpired(ctx, now, *batch)
	if err != nil {
		return fmt.Errorf("janitor: %w", err)
	}
	a, err := db.TrimAudit(ctx, now.Add(-*auditRetention), *batch)
	if err != nil {
		return fmt.Errorf("janitor: trim audit: %w", err)
	}
	_, err = fmt.Fprintf(out, "removed %d expired rows and %d audit events older than %s\n", n, a, *auditRetention)
	return err
}

func cmdKeys(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	secretFile := fs.String("secret-file", os.Getenv("BULWARK_SECRET_FILE"), "file holding the master secret(s)")
	algs := fs.String("signing-algs", envOr("BULWARK_SIGNING_ALGS", "ES256,RS256"), "signing algorithms")
	db, rest, err := openDB(ctx, fs, args)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(rest) == 0 {
		return usageError{"keys needs list, rotate, revoke KID or reseal"}
	}
	c := config{Dev: true}
	if err := c.finish("", *secretFile, *algs, ""); err != nil {
		return err
	}
	if len(c.Secrets) == 0 {
		return errors.New("BULWARK_SECRET (or --secret-file) is required")
	}
	box, err := secretbox.New(c.Secrets)
	if err != nil {
		return err
	}
	ring, err := keys.NewRing(ctx, keys.Config{Store: db, Locker: db, Notifier: db, Sealer: box, Algorithms: c.SigningAlgs,
		Audit: func(ctx context.Context, e storage.AuditEvent) {
			e.Time = time.Now()
			_ = db.AppendAudit(ctx, &e)
		}})
	if err != nil {
		return err
	}
	actor := "cli:" + envOr("USER", "operator")
	switch rest[0] {
	case "list":
		list, err := db.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATES/ACTIVATED\tRETIRED\tREVOKED")
		for _, k := range list {
			act := k.ActivatedAt
			if k.State == storage.KeyNext {
				act = k.ActivateAt
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Algorithm, k.State, ts(k.CreatedAt), ts(act), ts(k.RetiredAt), ts(k.RevokedAt))
		}
		return tw.Flush()
	case "rotate":
		alg := c.SigningAlgs[0]
		if len(rest) > 1 {
			alg = rest[1]
		}
		if err := ring.Rotate(ctx, alg, actor); err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "rotated %s: the next key is now active; every replica picks it up within seconds\n", alg)
		return err
	case "revoke":
		if len(rest) != 2 {
			return usageError{"keys revoke needs a KID"}
		}
		if err := ring.Revoke(ctx, rest[1], actor); err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "revoked %s: removed from JWKS; tokens it signed are inactive\n", rest[1])
		return err
	case "reseal":
		n, err := ring.Reseal(ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "resealed %d key(s) under the newest master secret\n", n)
		return err
	}
	return usageError{"keys needs list, rotate, revoke KID or reseal: got " + strings.Join(rest, " ")}
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
