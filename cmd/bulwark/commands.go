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
	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/server/audit"
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
	n, a, ran, err := janitorOnce(ctx, db, time.Now(), *auditRetention, *batch, discardLogger())
	if err != nil {
		return fmt.Errorf("janitor: %w", err)
	}
	if !ran {
		_, err = fmt.Fprintln(out, "another janitor holds the lock; nothing done")
		return err
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
	box, err := openBox(*secretFile)
	if err != nil {
		return err
	}
	var algList []string
	for _, a := range strings.Split(*algs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			algList = append(algList, a)
		}
	}
	ring, err := keys.NewRing(ctx, keys.Config{Store: db, Locker: db, Notifier: db, Sealer: box, Algorithms: algList,
		Audit: audit.NewSink(db, discardLogger(), nil).Record})
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
		alg := algList[0]
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

// openBox reads the master secret(s) from BULWARK_SECRET or a file.
func openBox(secretFile string) (*secretbox.Box, error) {
	secrets, problems := loadSecrets("", secretFile)
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if len(secrets) == 0 {
		return nil, errors.New("BULWARK_SECRET (or --secret-file) is required")
	}
	return secretbox.New(secrets)
}

func discardLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func cmdAPIKeys(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("apikeys", flag.ContinueOnError)
	secretFile := fs.String("secret-file", os.Getenv("BULWARK_SECRET_FILE"), "file holding the master secret(s)")
	name := fs.String("name", "", "create: a name for the key")
	ownerType := fs.String("owner-type", "service", "create: client, user or service")
	ownerID := fs.String("owner-id", "", "create: the owner's id")
	scopes := fs.String("scopes", "", "create: space- or comma-separated scopes ("+strings.Join(apikeys.AllScopes, ", ")+")")
	expiresIn := fs.Duration("expires-in", 0, "create: hard expiry (0 = none)")
	rotation := fs.Duration("rotation-period", 0, "create: rotation period (0 = server default, 90 days)")
	grace := fs.Duration("grace-period", 0, "create: grace period after rotation (0 = default, 7 days)")
	db, rest, err := openDB(ctx, fs, args)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(rest) == 0 {
		return usageError{"apikeys needs create, list, rotate ID or revoke ID"}
	}
	box, err := openBox(*secretFile)
	if err != nil {
		return err
	}
	h, err := hash.New(hash.DefaultParams())
	if err != nil {
		return err
	}
	svc, err := apikeys.New(apikeys.Config{Store: db, Locker: db, Notifier: db, Sealer: box,
		Hasher: hash.NewCached(h, hash.CacheConfig{}), Logger: discardLogger(), Audit: audit.NewSink(db, discardLogger(), nil).Record})
	if err != nil {
		return err
	}
	actor := "cli:" + envOr("USER", "operator")
	switch rest[0] {
	case "create":
		token, k, err := svc.Create(ctx, apikeys.CreateRequest{Name: *name, OwnerType: *ownerType, OwnerID: *ownerID,
			Scopes: strings.FieldsFunc(*scopes, func(r rune) bool { return r == ' ' || r == ',' }), ExpiresIn: *expiresIn,
			RotationPeriod: *rotation, GracePeriod: *grace, CreatedBy: actor})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "created API key %s (%s), rotates at %s\n\n  %s\n\nThis is the only time the key is shown. Store it in a secret manager.\n", k.ID, k.Name, ts(k.RotateAt), token)
		return err
	case "list":
		list, err := svc.List(ctx, storage.ListOptions{})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "ID\tNAME\tOWNER\tSTATUS\tSCOPES\tROTATES\tEXPIRES\tLAST USED")
		for _, k := range list {
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s:%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.OwnerType, k.OwnerID, k.Status, strings.Join(k.Scopes, " "), ts(k.RotateAt), ts(k.ExpiresAt), ts(k.LastUsedAt))
		}
		return tw.Flush()
	case "rotate":
		if len(rest) != 2 {
			return usageError{"apikeys rotate needs an ID"}
		}
		token, k, err := svc.Rotate(ctx, rest[1], actor)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "rotated: new key %s\n\n  %s\n\nThe old key keeps working until its grace period ends.\n", k.ID, token)
		return err
	case "revoke":
		if len(rest) != 2 {
			return usageError{"apikeys revoke needs an ID"}
		}
		if err := svc.Revoke(ctx, rest[1], actor); err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "revoked %s: refused on every replica within seconds\n", rest[1])
		return err
	}
	return usageError{"apikeys needs create, list, rotate ID or revoke ID"}
}
