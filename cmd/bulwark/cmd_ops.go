package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-auth/bulwark/storage/postgres"
)

// version and commit may be set at build time with -ldflags
// "-X main.version=v1.2.3 -X main.commit=abc123"; otherwise they come from
// the build information Go embeds (module version with `go install
// …@version`, VCS revision when built from a checkout).
var (
	version = ""
	commit  = ""
)

// buildVersion returns the version and commit this binary was built from.
func buildVersion() (v, rev string) {
	v, rev = version, commit
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return cmpOr(v, "unknown"), cmpOr(rev, "unknown")
	}
	if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	revision, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" && revision != "" {
		rev = revision
		if dirty {
			rev += "-dirty"
		}
	}
	return cmpOr(v, "devel"), cmpOr(rev, "unknown")
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the commit it was built from",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			v, rev := buildVersion()
			_, err := fmt.Fprintf(c.stdout, "bulwark %s (commit %s)\n", v, rev)
			return err
		},
	}
}

func (c *cli) migrateCmd() *cobra.Command {
	up := &cobra.Command{
		Use:     "up",
		Short:   "Apply pending migrations",
		Example: "  bulwark migrate up --database-url postgres://bulwark@127.0.0.1/bulwark",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.require(needDB); err != nil {
				return err
			}
			db, err := c.openRawDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			applied, err := postgres.MigrateUp(cmd.Context(), db.Pool())
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				_, err = fmt.Fprintln(c.stdout, "database is up to date")
				return err
			}
			for _, m := range applied {
				if _, err := fmt.Fprintln(c.stdout, "applied", m); err != nil {
					return err
				}
			}
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show which migrations are applied",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.require(needDB); err != nil {
				return err
			}
			db, err := c.openRawDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			states, err := postgres.MigrationStatus(cmd.Context(), db.Pool())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "MIGRATION\tSTATE\tAPPLIED AT")
			for _, s := range states {
				state, at := "pending", ""
				if s.Applied {
					state, at = "applied", s.AppliedAt.UTC().Format(time.RFC3339)
				}
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, state, at)
			}
			return tw.Flush()
		},
	}
	return group("migrate", "Apply or show database migrations", up, status)
}

func (c *cli) janitorCmd() *cobra.Command {
	var batch int
	cmd := &cobra.Command{
		Use:   "janitor",
		Short: "Delete expired tokens, codes and sessions once; trim the audit trail",
		Long: `Delete expired tokens, codes and sessions, initial access tokens that
ended longer ago than --registration-token-retention, and audit events
older than --audit-retention. serve runs the same job every --janitor-interval; this
command is for a cron job when that is disabled.`,
		Example: "  bulwark janitor --batch 5000",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if batch <= 0 {
				return usageError{msg: "--batch must be positive"}
			}
			if err := c.require(needDB); err != nil {
				return err
			}
			db, err := c.openDB(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			n, a, ran, err := janitorOnce(cmd.Context(), db, time.Now(), c.cfg.retention(), batch, discardLogger())
			if err != nil {
				return fmt.Errorf("janitor: %w", err)
			}
			if !ran {
				_, err = fmt.Fprintln(c.stdout, "another janitor holds the lock; nothing done")
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "removed %d expired rows and %d audit events older than %s\n", n, a, c.cfg.AuditRetention)
			return err
		},
	}
	cmd.Flags().IntVar(&batch, "batch", 1000, "rows per delete statement")
	return cmd
}

func (c *cli) healthcheckCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when the local server is ready (GET /readyz), 1 otherwise",
		Long: `GET /readyz on the admin listener of the server configured here (the same
--admin-addr and TLS options as serve) and exit 0 on 200, 1 otherwise. Made
for container health checks in images without a shell or curl.`,
		Example: "  bulwark healthcheck --admin-addr 127.0.0.1:4445",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.require(0); err != nil {
				return err
			}
			return healthcheck(cmd.Context(), c.cfg.AdminAddr, c.cfg.TLSCert != "", timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// healthcheck asks the admin listener at addr whether it is ready. A
// listener bound to all interfaces (":4445", "0.0.0.0:4445") is asked on
// loopback.
func healthcheck(ctx context.Context, addr string, useTLS bool, timeout time.Duration) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin address %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme := "http"
	client := &http.Client{Timeout: timeout}
	if useTLS {
		scheme = "https"
		// The probe talks to this very process's listener on loopback; the
		// certificate names the public host, not 127.0.0.1.
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} // #nosec G402 -- loopback probe of our own listener
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: /readyz answered %s", res.Status)
	}
	return nil
}
