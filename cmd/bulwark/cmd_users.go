package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/server/audit"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/clientcache"
	"github.com/bulwark-auth/bulwark/storage/postgres"
)

// adminService opens the database and the admin Service, which owns
// validation, defaults and audit for users and clients: the CLI only
// translates flags into its calls.
func (c *cli) adminService(ctx context.Context) (*postgres.Store, *admin.Service, error) {
	if err := c.require(needDB | needSecret); err != nil {
		return nil, nil, err
	}
	db, err := c.openDB(ctx)
	if err != nil {
		return nil, nil, err
	}
	ring, err := c.ring(ctx, db)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	h, err := hash.New(hash.DefaultParams())
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	regTokens, err := registrationTokens(c.cfg.Secrets)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	// Through the client cache's decorator, so a client changed here is
	// announced to running replicas (their client caches and CORS origins)
	// like one changed through the admin API.
	svc, err := admin.NewService(admin.Config{Store: clientcache.New(db, clientcache.Config{}), Hasher: h, Keys: ring, RegistrationTokens: regTokens,
		SecretOverlap: c.cfg.SecretOverlap, AllowedScopes: c.cfg.AllowedScopes,
		Logger: discardLogger(), Audit: audit.NewSink(db, discardLogger(), nil).Record})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, svc, nil
}

// operator is the CLI's actor: whoever holds the database URL and the
// master secret already holds every power.
func operator() admin.Actor { return admin.Actor{ID: actor(), Scopes: apikeys.AllScopes} }

// adminScopes are the API key scopes a console user may hold (all but
// introspect, which is for resource servers).
func adminScopes() []string {
	var out []string
	for _, sc := range apikeys.AllScopes {
		if strings.HasPrefix(sc, "admin:") {
			out = append(out, sc)
		}
	}
	return out
}

// readPassword reads a password from a file, or from standard input when
// path is "-". One trailing newline is dropped (echo and editors add it).
func (c *cli) readPassword(path string) (string, error) {
	var r io.Reader
	if path == "-" {
		r = c.stdin
	} else {
		f, err := os.Open(path) // #nosec G304 -- the operator names the password file
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if p == "" {
		return "", errors.New("the password is empty")
	}
	return p, nil
}

// findUser resolves a username (case-insensitive) or a user id.
func findUser(ctx context.Context, db *postgres.Store, svc *admin.Service, ref string) (*storage.User, error) {
	u, err := db.UserByUsername(ctx, ref)
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	u, err = svc.GetUser(ctx, ref)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("no user with username or id %q", ref)
	}
	return u, err
}

func (c *cli) usersCmd() *cobra.Command {
	var (
		email, passwordFile, scopesFlag string
		isAdmin                         bool
	)
	create := &cobra.Command{
		Use:   "create USERNAME",
		Short: "Create a user (--admin: a console administrator with every admin scope)",
		Long: `Create a user. With --admin the user holds every admin scope: it can sign
in to the admin console and mint admin API keys there. The password comes
from --password-file (a file, or - for standard input); without it a
password is generated and printed once.`,
		Example: `  bulwark users create admin --admin --password-file ./admin-password
  printf '%s' "$PASSWORD" | bulwark users create alice --email alice@example.com --password-file -`,
		Args: exactArgs("username"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if isAdmin && scopesFlag != "" {
				return usageError{msg: "--admin grants every admin scope; give --admin or --admin-scopes, not both"}
			}
			in := admin.UserInput{Username: args[0], Email: email, AdminScopes: splitList(scopesFlag)}
			if isAdmin {
				in.AdminScopes = adminScopes()
			}
			if passwordFile != "" {
				p, err := c.readPassword(passwordFile)
				if err != nil {
					return err
				}
				in.Password = p
			}
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			u, generated, err := svc.CreateUser(cmd.Context(), operator(), in)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(c.stdout, "created user %s (%s)", u.Username, u.ID); err != nil {
				return err
			}
			if len(u.AdminScopes) > 0 {
				_, _ = fmt.Fprintf(c.stdout, " with admin scopes %s", strings.Join(u.AdminScopes, " "))
			}
			_, _ = fmt.Fprintln(c.stdout)
			if generated != "" {
				_, err = fmt.Fprintf(c.stdout, "\n  password: %s\n\nThis is the only time the password is shown.\n", generated)
			}
			return err
		},
	}
	f := create.Flags()
	f.StringVar(&email, "email", "", "email address")
	f.BoolVar(&isAdmin, "admin", false, "grant every admin scope ("+strings.Join(adminScopes(), ", ")+")")
	f.StringVar(&scopesFlag, "admin-scopes", "", "grant these admin scopes only (space- or comma-separated)")
	f.StringVar(&passwordFile, "password-file", "", "file holding the password, or - for standard input (default: generate one)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, svc, err := c.adminService(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			users, err := svc.ListUsers(cmd.Context(), storage.ListOptions{Limit: 1000})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tSTATUS\tTOTP\tADMIN SCOPES")
			for _, u := range users {
				status := "active"
				if u.Disabled {
					status = "disabled"
				}
				_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\n", u.ID, u.Username, cmpOr(u.Email, "-"), status, admin.TOTPEnrolled(u), cmpOr(strings.Join(u.AdminScopes, " "), "-"))
			}
			return tw.Flush()
		},
	}

	var setFile string
	setPassword := &cobra.Command{
		Use:   "set-password USER",
		Short: "Set a user's password (username or id); ends their sessions",
		Long: `Set the password of USER (a username or a user id) from --password-file
(a file, or - for standard input); without it a password is generated and
printed once. The user's login sessions end.`,
		Example: "  bulwark users set-password alice --password-file ./alice-password",
		Args:    exactArgs("user"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var password string
			if setFile != "" {
				p, err := c.readPassword(setFile)
				if err != nil {
					return err
				}
				password = p
			}
			return c.onUser(func(ctx context.Context, svc *admin.Service, u *storage.User) error {
				if password == "" {
					_, generated, err := svc.ResetPassword(ctx, operator(), u.ID)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(c.stdout, "set a new password for %s; their sessions ended\n\n  password: %s\n\nThis is the only time the password is shown.\n", u.Username, generated)
					return err
				}
				if _, err := svc.SetPassword(ctx, operator(), u.ID, password); err != nil {
					return err
				}
				_, err := fmt.Fprintf(c.stdout, "set the password of %s; their sessions ended\n", u.Username)
				return err
			})(cmd, args)
		},
	}
	setPassword.Flags().StringVar(&setFile, "password-file", "", "file holding the password, or - for standard input (default: generate one)")

	disable := &cobra.Command{
		Use:     "disable USER",
		Short:   "Disable a user: sign them out and revoke their tokens and API keys",
		Example: "  bulwark users disable alice",
		Args:    exactArgs("user"),
		RunE: c.onUser(func(ctx context.Context, svc *admin.Service, u *storage.User) error {
			_, n, err := svc.DisableUser(ctx, operator(), u.ID)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "disabled %s: %d login session(s) ended, %d token(s) and %d API key(s) revoked\n", u.Username, n.LoginSessions, n.Tokens, n.APIKeys)
			return err
		}),
	}

	signOut := &cobra.Command{
		Use:   "sign-out USER",
		Short: "Sign a user out everywhere: end their sessions, send back-channel logouts",
		Long: `Sign USER (a username or a user id) out everywhere, as
DELETE /admin/v1/users/{id}/sessions and the console's "Sign out
everywhere" do: every login session ends (public sign-in and console), and
every application that joined one is queued an OpenID Connect back-channel
logout, which the running servers deliver. Tokens already issued stay valid
until they expire; "users disable" revokes them too.`,
		Example: "  bulwark users sign-out alice",
		Args:    exactArgs("user"),
		RunE: c.onUser(func(ctx context.Context, svc *admin.Service, u *storage.User) error {
			n, err := svc.RevokeSessions(ctx, operator(), u.ID)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "signed %s out everywhere: %d login session(s) ended, %d back-channel logout(s) queued\n", u.Username, n.LoginSessions, n.Logouts)
			return err
		}),
	}
	return group("users", "Manage users (console administrators and people who sign in)", create, list, setPassword, disable, signOut)
}

// onUser runs fn for the user named by the command's one argument (a
// username or a user id) with the admin Service.
func (c *cli) onUser(fn func(ctx context.Context, svc *admin.Service, u *storage.User) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		db, svc, err := c.adminService(cmd.Context())
		if err != nil {
			return err
		}
		defer db.Close()
		u, err := findUser(cmd.Context(), db, svc, args[0])
		if err != nil {
			return err
		}
		return fn(cmd.Context(), svc, u)
	}
}
