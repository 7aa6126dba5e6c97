package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/server/audit"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres"
)

// cli is one invocation: the configuration every command shares (loaded
// once, before the command runs) and the standard streams.
type cli struct {
	cfg                     config
	secretFile, secret, alg *string
	// options is the root's persistent flag set: the configuration.
	options *pflag.FlagSet

	stdin          io.Reader
	stdout, stderr io.Writer
}

// newRoot builds the command tree. Every option of the configuration is a
// persistent flag of the root, so it is accepted anywhere after any
// command; each command adds its own flags, help and examples.
func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "bulwark",
		Short: "OAuth 2.0 / OpenID Connect authorization server",
		Long: `Bulwark is an OAuth 2.0 / OpenID Connect authorization server.

Every option below can be given as a flag (after any command), as a
BULWARK_* environment variable (the flag name in upper snake case, e.g.
--access-token-lifespan is BULWARK_ACCESS_TOKEN_LIFESPAN), or in a YAML
file named by --config or BULWARK_CONFIG; flags win over the environment,
the environment over the file. Durations use Go syntax: 90s, 10m, 720h.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// Commands that read no configuration work whatever it holds.
			for p := cmd; p != nil; p = p.Parent() {
				switch p.Name() {
				case "version", "completion", "help", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
					return nil
				}
			}
			return c.load()
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{msg: err.Error(), cmd: cmd.CommandPath()}
	})
	pf := root.PersistentFlags()
	pf.SortFlags = false
	c.secretFile, c.secret, c.alg = configFlags(pf, &c.cfg)
	pf.String("config", "", "YAML configuration file (also BULWARK_CONFIG)")
	c.options = pf
	// Help lists a command's own flags, then the configuration by section.
	root.Annotations = map[string]string{"options": optionsHelp(pf)}
	root.SetUsageTemplate(usageTemplate)
	root.AddCommand(c.serveCmd(), c.migrateCmd(), c.keysCmd(), c.apikeysCmd(), c.usersCmd(), c.clientsCmd(),
		c.registrationTokensCmd(), c.janitorCmd(), c.healthcheckCmd(), c.benchCmd(), c.versionCmd())
	return root
}

// usageTemplate is cobra's default with the configuration options shown
// by section (optionsHelp) instead of one alphabetical "Global Flags" list.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Available Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .LocalNonPersistentFlags.HasAvailableFlags}}

Flags:
{{.LocalNonPersistentFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}

Configuration (flag, BULWARK_* environment variable or --config file):
{{index .Root.Annotations "options"}}{{if .HasAvailableSubCommands}}
Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`

// optionsHelp renders the configuration flags of pf grouped by section.
func optionsHelp(pf *pflag.FlagSet) string {
	var b strings.Builder
	seen := map[string]bool{}
	section := func(title string, names []string) {
		fs := pflag.NewFlagSet(title, pflag.ContinueOnError)
		fs.SortFlags = false
		for _, n := range names {
			if f := pf.Lookup(n); f != nil && !seen[n] {
				fs.AddFlag(f)
				seen[n] = true
			}
		}
		if fs.HasFlags() {
			b.WriteString("\n" + title + ":\n" + fs.FlagUsages())
		}
	}
	for _, s := range configSections() {
		names := s.Options
		if s.Name == "general" {
			names = append(slices.Clone(names), "config")
		}
		section(s.Title+" ("+s.Name+")", names)
	}
	var rest []string
	pf.VisitAll(func(f *pflag.Flag) {
		if !seen[f.Name] {
			rest = append(rest, f.Name)
		}
	})
	section("Other (other)", rest)
	return b.String()
}

// load layers the environment and the config file under the flags and
// reports every unparsable value at once (exit status 2).
func (c *cli) load() error {
	if err := layer(c.options, os.LookupEnv); err != nil {
		return usageError{msg: "configuration:\n" + err.Error()}
	}
	return nil
}

// require validates every value plus what the command needs.
func (c *cli) require(n need) error {
	if err := c.cfg.check(*c.secret, *c.secretFile, *c.alg, n); err != nil {
		return usageError{msg: "configuration:\n" + err.Error()}
	}
	return nil
}

// group is a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{msg: cmd.Name() + " needs a subcommand: " + subNames(cmd)}
		},
	}
	g.AddCommand(subs...)
	return g
}

func subNames(cmd *cobra.Command) string {
	var n []string
	for _, s := range cmd.Commands() {
		if s.IsAvailableCommand() {
			n = append(n, s.Name())
		}
	}
	return strings.Join(n, ", ")
}

// noArgs refuses any positional argument, naming it.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return usageError{msg: fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())}
	}
	return usageError{msg: fmt.Sprintf("unexpected argument %q", args[0])}
}

// exactArgs wants exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usageError{msg: "missing argument " + strings.ToUpper(names[len(args)])}
		case len(args) > len(names):
			return usageError{msg: fmt.Sprintf("unexpected argument %q", args[len(names)])}
		}
		return nil
	}
}

// maxArgs allows the named optional positional arguments.
func maxArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > len(names) {
			return usageError{msg: fmt.Sprintf("unexpected argument %q", args[len(names)])}
		}
		return nil
	}
}

// openDB opens Postgres and refuses a database that is not migrated, with
// the fix in the message instead of a raw SQL error.
func (c *cli) openDB(ctx context.Context) (*postgres.Store, error) {
	db, err := c.openRawDB(ctx)
	if err != nil {
		return nil, err
	}
	pending, err := postgres.Pending(ctx, db.Pool())
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("check migrations: %w", err)
	}
	if pending > 0 {
		db.Close()
		return nil, fmt.Errorf("the database has %d pending migration(s): run `bulwark migrate up` first", pending)
	}
	return db, nil
}

// openRawDB opens Postgres without looking at its schema (migrate).
func (c *cli) openRawDB(ctx context.Context) (*postgres.Store, error) {
	s, err := postgres.Open(ctx, postgres.Config{DSN: c.cfg.DatabaseURL, Logger: discardLogger()})
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return s, nil
}

// ring builds the key ring over db with the shared configuration.
func (c *cli) ring(ctx context.Context, db *postgres.Store) (*keys.Ring, error) {
	box, err := secretbox.New(c.cfg.Secrets)
	if err != nil {
		return nil, fmt.Errorf("master secret: %w", err)
	}
	return keys.NewRing(ctx, keys.Config{Store: db, Locker: db, Notifier: db, Sealer: box,
		Algorithms: c.cfg.SigningAlgs, RotationPeriod: c.cfg.KeyRotation, LeadTime: c.cfg.KeyLeadTime,
		Retention: c.cfg.KeyRetention, JWKSMaxAge: c.cfg.JWKSMaxAge, Logger: discardLogger(),
		Audit: audit.NewSink(db, discardLogger(), nil).Record})
}

// actor names the operator in the audit trail.
func actor() string { return "cli:" + envOr("USER", "operator") }

func discardLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// named turns "not found" into a sentence naming what was looked for.
func named(kind, id string, err error) error {
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, keys.ErrUnknownKey) {
		return fmt.Errorf("no %s %q", kind, id)
	}
	return err
}

// errWrongSecret explains a refused write of key material.
func errWrongSecret(err error) error {
	if errors.Is(err, keys.ErrWrongSecret) {
		return fmt.Errorf("%w\n(the newest secret listed seals new material; every stored key must open with one of the listed secrets)", err)
	}
	return err
}
