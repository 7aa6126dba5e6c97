package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bulwark-auth/bulwark/server/egress"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// cliRun runs one command line the way main does and returns its exit
// status and output.
func cliRun(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = execute(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// unsetConfigEnv clears every BULWARK_* variable and DATABASE_URL for the
// test, so only what the test sets configures the command.
func unsetConfigEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || (strings.HasPrefix(k, "BULWARK_") && k != "BULWARK_TEST_PG") {
			t.Setenv(k, "")
			_ = os.Unsetenv(k) // t.Setenv restores it afterwards
		}
	}
}

const (
	secretA = "cli-test-master-secret-A-0123456789abcdefghij"
	secretB = "cli-test-master-secret-B-0123456789abcdefghij"
	// unreachableDSN points at a port nothing listens on: a command that
	// used it instead of the flag's database would fail.
	unreachableDSN = "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=2"
)

func migratedDB(t *testing.T) string {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	if code, out, errs := cliRun(t, "", "migrate", "up", "--database-url", dsn); code != 0 {
		t.Fatalf("migrate up: %d %s %s", code, out, errs)
	}
	return dsn
}

// Flags go anywhere after the command, before or after positional
// arguments, and the flag's database is the one used (DATABASE_URL points
// elsewhere).
func TestFlagPlacement(t *testing.T) {
	unsetConfigEnv(t)
	dsn := migratedDB(t)
	t.Setenv("DATABASE_URL", unreachableDSN)
	t.Setenv("BULWARK_SECRET", secretA)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"case=flags-after-subcommand", []string{"migrate", "status", "--database-url", dsn}, "applied"},
		{"case=flags-between", []string{"migrate", "--database-url", dsn, "status"}, "applied"},
		{"case=keys-list-flag-after", []string{"keys", "list", "--database-url", dsn}, "KID"},
		{"case=apikeys-create-flags-after", []string{"apikeys", "create", "--name", "orders-api", "--owner-type", "service", "--owner-id", "orders", "--scopes", "introspect", "--database-url", dsn}, "created API key"},
		{"case=apikeys-list-flag-equals", []string{"apikeys", "list", "--database-url=" + dsn}, "orders-api"},
		{"case=janitor-flag-after", []string{"janitor", "--batch", "10", "--database-url", dsn}, "removed"},
		{"case=users-create-flags-around-arg", []string{"users", "create", "--email", "a@example.com", "alice", "--database-url", dsn}, "created user alice"},
		{"case=users-flags-before-arg", []string{"users", "disable", "--database-url", dsn, "alice"}, "disabled alice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := cliRun(t, "", tc.args...)
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, out, errs, tc.want)
			}
		})
	}
	// Without the flag, DATABASE_URL (unreachable here) is used: proof
	// that the flag above really chose the database.
	if code, _, _ := cliRun(t, "", "keys", "list"); code != 1 {
		t.Fatalf("keys list without --database-url: exit %d, want 1 (unreachable DATABASE_URL)", code)
	}
}

// Unknown commands, flags and arguments are exit status 2 with a message
// naming them; nothing needs a database to say so.
func TestUsageErrors(t *testing.T) {
	unsetConfigEnv(t)
	t.Setenv("DATABASE_URL", unreachableDSN)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frob"}, `unknown command "frob" for "bulwark"`},
		{[]string{"keys", "frob"}, `unknown command "frob" for "bulwark keys"`},
		{[]string{"keys"}, "keys needs a subcommand"},
		{[]string{"keys", "list", "--nope"}, "unknown flag: --nope"},
		{[]string{"migrate", "status", "extra"}, `unexpected argument "extra"`},
		{[]string{"janitor", "extra", "--batch", "0"}, `unexpected argument "extra"`},
		{[]string{"serve", "foo", "--log-format", "text"}, `unexpected argument "foo"`},
		{[]string{"keys", "revoke"}, "missing argument KID"},
		{[]string{"apikeys", "rotate", "a", "b"}, `unexpected argument "b"`},
		{[]string{"keys", "list", "--access-token-lifespan", "1"}, "invalid argument"},
		{[]string{"users", "create", "bob", "--admin", "--admin-scopes", "admin:users"}, "give --admin or --admin-scopes, not both"},
	}
	for _, tc := range cases {
		t.Run("case="+strings.Join(tc.args, "_"), func(t *testing.T) {
			code, out, errs := cliRun(t, "", tc.args...)
			if code != exitUsage || !strings.Contains(errs, tc.want) || !strings.Contains(errs, "--help' for usage") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errs, tc.want)
			}
		})
	}
}

// --help works on every command without a database or a secret.
func TestHelpWithoutDatabase(t *testing.T) {
	unsetConfigEnv(t)
	t.Setenv("DATABASE_URL", unreachableDSN)
	t.Setenv("BULWARK_ACCESS_TOKEN_LIFESPAN", "not-a-duration") // not even looked at
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	var paths [][]string
	var walk func(prefix []string, cmds []*cobra.Command)
	walk = func(prefix []string, cmds []*cobra.Command) {
		for _, c := range cmds {
			p := append(append([]string{}, prefix...), c.Name())
			paths = append(paths, p)
			walk(p, c.Commands())
		}
	}
	walk(nil, root.Commands())
	if len(paths) < 25 {
		t.Fatalf("only %d commands found", len(paths))
	}
	for _, p := range paths {
		t.Run("case="+strings.Join(p, "_"), func(t *testing.T) {
			code, out, errs := cliRun(t, "", append(p, "--help")...)
			if code != 0 || !strings.Contains(out, "Usage:") {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
		})
	}
}

// Every unparsable environment value is an error, all reported at once,
// with exit status 2; a valid file value below them is not an error.
func TestBadEnvReportedAtOnce(t *testing.T) {
	unsetConfigEnv(t)
	t.Setenv("BULWARK_ACCESS_TOKEN_LIFESPAN", "1")
	t.Setenv("BULWARK_JANITOR_INTERVAL", "abc")
	t.Setenv("BULWARK_DEV", "yes")
	t.Setenv("BULWARK_MIGRATE", "maybe")
	t.Setenv("BULWARK_SECRET", "must-never-be-echoed-in-an-error-message")
	code, _, errs := cliRun(t, "", "keys", "list")
	if code != exitUsage {
		t.Fatalf("exit %d, want 2: %s", code, errs)
	}
	for _, want := range []string{
		`BULWARK_ACCESS_TOKEN_LIFESPAN="1": not a duration`,
		`BULWARK_JANITOR_INTERVAL="abc": not a duration`,
		`BULWARK_DEV="yes": not a boolean`,
		`BULWARK_MIGRATE="maybe": not a boolean`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "must-never-be-echoed") {
		t.Fatal("the secret was echoed")
	}
	// Commands that read no configuration still work.
	if code, out, errs := cliRun(t, "", "version"); code != 0 || !strings.HasPrefix(out, "bulwark ") {
		t.Fatalf("version with a bad environment: %d %q %q", code, out, errs)
	}
}

// Precedence: flag over environment over file; file errors (unknown
// options, bad values) are reported together with the environment's.
func TestConfigLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bulwark.yaml")
	if err := os.WriteFile(file, []byte(`
listen:
  public-addr: ":1111"
  admin-addr: "127.0.0.1:2222"
  issuer: https://file.example.com
tokens:
  access-token-lifespan: 3m
  refresh_token_lifespan: 48h
signing:
  signing-algs: [ES256, EdDSA]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var c config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	configFlags(fs, &c)
	fs.String("config", "", "")
	if err := fs.Parse([]string{"--config", file, "--public-addr", ":3333"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BULWARK_ADMIN_ADDR": "127.0.0.1:4444", "DATABASE_URL": "postgres://env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := layer(fs, lookup); err != nil {
		t.Fatal(err)
	}
	algs, _ := fs.GetString("signing-algs")
	got := []any{c.PublicAddr, c.AdminAddr, c.Issuer, c.AccessTokenLifespan, c.RefreshTokenLifespan, c.DatabaseURL, algs}
	want := []any{":3333", "127.0.0.1:4444", "https://file.example.com", 3 * time.Minute, 48 * time.Hour, "postgres://env", "ES256,EdDSA"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d = %v, want %v", i, got[i], want[i])
		}
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("tokens:\n  access-token-lifespan: 300\n  no-such-option: 1\nnosection:\n  x: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c2 config
	fs2 := pflag.NewFlagSet("t", pflag.ContinueOnError)
	configFlags(fs2, &c2)
	fs2.String("config", "", "")
	env2 := map[string]string{"BULWARK_CONFIG": bad, "BULWARK_KEY_LEAD_TIME": "2 days"}
	err := layer(fs2, func(k string) (string, bool) { v, ok := env2[k]; return v, ok })
	for _, want := range []string{`unknown section "nosection"`, "tokens.no-such-option: unknown option", `tokens.access-token-lifespan: "300": not a duration`, `BULWARK_KEY_LEAD_TIME="2 days": not a duration`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// tableSnapshot returns every row of the tables that hold key material,
// as text, to compare before and after a refused command.
func tableSnapshot(t *testing.T, dsn string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var b strings.Builder
	for _, table := range []string{"signing_keys", "api_keys"} {
		rows, err := conn.Query(ctx, "SELECT row_to_json(t)::text FROM "+table+" t ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			b.WriteString(s + "\n")
		}
		rows.Close()
	}
	return b.String()
}

// Every command that writes key material first proves the secret opens
// the stored keys: with the wrong one it writes nothing (the tables are
// byte-for-byte unchanged) and says which secret failed.
func TestWrongSecretWritesNothing(t *testing.T) {
	unsetConfigEnv(t)
	dsn := migratedDB(t)
	t.Setenv("DATABASE_URL", dsn)
	t.Setenv("BULWARK_SECRET", secretA)
	if code, out, errs := cliRun(t, "", "keys", "rotate", "ES256", "--force"); code != 0 {
		t.Fatalf("bootstrap keys: %d %s %s", code, out, errs)
	}
	code, out, errs := cliRun(t, "", "apikeys", "create", "--name", "k", "--owner-id", "o", "--scopes", "introspect")
	if code != 0 {
		t.Fatalf("apikeys create: %d %s", code, errs)
	}
	id := regexp.MustCompile(`created API key (\S+)`).FindStringSubmatch(out)[1]
	before := tableSnapshot(t, dsn)

	t.Setenv("BULWARK_SECRET", secretB)
	for _, args := range [][]string{
		{"keys", "rotate", "ES256", "--force"},
		{"keys", "rotate", "ES256"},
		{"keys", "reseal"},
		{"apikeys", "rotate", id},
	} {
		t.Run("case="+strings.Join(args, "_"), func(t *testing.T) {
			code, out, errs := cliRun(t, "", args...)
			if code != exitFailed || !strings.Contains(errs, "none of the configured master secrets (BULWARK_SECRET or BULWARK_SECRET_FILE) opens signing key(s)") ||
				!strings.Contains(errs, "nothing was written") {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
			if after := tableSnapshot(t, dsn); after != before {
				t.Fatalf("key tables changed:\nbefore %s\nafter %s", before, after)
			}
		})
	}

	// The right secret listed after a new one: reseal moves every key
	// under the new secret, and the old one is no longer needed.
	t.Setenv("BULWARK_SECRET", secretB+","+secretA)
	if code, out, errs := cliRun(t, "", "keys", "reseal"); code != 0 || !strings.Contains(out, "resealed 2 key(s)") {
		t.Fatalf("reseal: %d %q %q", code, out, errs)
	}
	t.Setenv("BULWARK_SECRET", secretB)
	if code, out, errs := cliRun(t, "", "keys", "rotate", "ES256", "--force"); code != 0 {
		t.Fatalf("rotate after reseal: %d %q %q", code, out, errs)
	}
}

// Manual rotation waits for the lead time unless --force, which warns.
func TestKeysRotateLeadTime(t *testing.T) {
	unsetConfigEnv(t)
	dsn := migratedDB(t)
	t.Setenv("DATABASE_URL", dsn)
	t.Setenv("BULWARK_SECRET", secretA)
	if code, _, errs := cliRun(t, "", "keys", "rotate", "ES256", "--force"); code != 0 {
		t.Fatalf("bootstrap: %s", errs)
	}
	before := tableSnapshot(t, dsn)
	code, _, errs := cliRun(t, "", "keys", "rotate", "ES256")
	if code != exitFailed || !strings.Contains(errs, "has not been published for the lead time") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if tableSnapshot(t, dsn) != before {
		t.Fatal("a refused rotation changed the keys")
	}
	// With a lead time of 1s, the next key created above qualifies once a
	// second has passed (poll with a generous deadline; never a fixed sleep).
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, errs := cliRun(t, "", "keys", "rotate", "ES256", "--key-lead-time", "1s", "--jwks-max-age", "1s")
		if code == 0 && strings.Contains(out, "rotated ES256") {
			if strings.Contains(errs, "warning") {
				t.Fatal("a rotation within the rules warned")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation never allowed: %d %s", code, errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, _, errs = cliRun(t, "", "keys", "rotate", "ES256", "--force")
	if code != 0 || !strings.Contains(errs, "warning: --force") || !strings.Contains(errs, "JWKS cache") {
		t.Fatalf("forced rotation: %d %q", code, errs)
	}
}

// Subcommands on an unmigrated database explain the fix instead of
// printing an SQL error.
func TestUnmigratedDatabase(t *testing.T) {
	unsetConfigEnv(t)
	dsn := pgtest.NewDatabase(t)
	t.Setenv("DATABASE_URL", dsn)
	t.Setenv("BULWARK_SECRET", secretA)
	for _, args := range [][]string{{"keys", "list"}, {"apikeys", "list"}, {"janitor"}, {"users", "list"}, {"clients", "list"}} {
		code, _, errs := cliRun(t, "", args...)
		if code != exitFailed || !strings.Contains(errs, "pending migration(s): run `bulwark migrate up` first") || strings.Contains(errs, "SQLSTATE") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}

// users create --admin on an empty database yields an administrator with
// every admin scope; the password comes from standard input.
func TestUsersCreateAdminFromStdin(t *testing.T) {
	unsetConfigEnv(t)
	dsn := migratedDB(t)
	t.Setenv("DATABASE_URL", dsn)
	t.Setenv("BULWARK_SECRET", secretA)
	code, out, errs := cliRun(t, "a-long-enough-password\n", "users", "create", "root", "--admin", "--password-file", "-")
	if code != 0 || !strings.Contains(out, "with admin scopes admin:apikeys admin:audit:read admin:clients:read admin:clients:write admin:keys admin:users") || strings.Contains(out, "password:") {
		t.Fatalf("%d %q %q", code, out, errs)
	}
	code, _, errs = cliRun(t, "short\n", "users", "set-password", "root", "--password-file", "-")
	if code != exitFailed || !strings.Contains(errs, "at least 12 characters") {
		t.Fatalf("short password: %d %q", code, errs)
	}
	db := pgtest.OpenStore(t, dsn, nil)
	u, err := db.UserByUsername(context.Background(), "root")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = cliRun(t, "another-long-password\n", "users", "set-password", u.ID, "--password-file", "-")
	if code != 0 || !strings.Contains(out, "set the password of root") {
		t.Fatalf("set-password by id: %d %q %q", code, out, errs)
	}
	after, err := db.UserByUsername(context.Background(), "root")
	if err != nil || after.PasswordHash == u.PasswordHash || !strings.HasPrefix(after.PasswordHash, "$argon2id$") {
		t.Fatalf("password hash not replaced: %v", err)
	}
	// Without a password file, one is generated and shown once.
	code, out, _ = cliRun(t, "", "users", "create", "bob")
	if code != 0 || !regexp.MustCompile(`password: \S{16,}`).MatchString(out) {
		t.Fatalf("generated password: %d %q", code, out)
	}
}

// clients go through the admin Service: its validation and defaults apply,
// and a refused client is not created.
func TestClientsThroughService(t *testing.T) {
	unsetConfigEnv(t)
	dsn := migratedDB(t)
	t.Setenv("DATABASE_URL", dsn)
	t.Setenv("BULWARK_SECRET", secretA)
	code, out, errs := cliRun(t, "", "clients", "create", "--id", "bad", "--redirect-uri", "http://example.com/cb")
	if code != exitFailed || !strings.Contains(errs, "redirect_uris") {
		t.Fatalf("bad redirect: %d %q %q", code, out, errs)
	}
	code, out, _ = cliRun(t, "", "clients", "list")
	if code != 0 || strings.Contains(out, "bad") {
		t.Fatalf("refused client listed: %q", out)
	}
	// Defaults come from the Service (RFC 7591 §2): authorization_code,
	// client_secret_basic, a generated secret.
	code, out, errs = cliRun(t, "", "clients", "create", "--id", "web", "--redirect-uri", "https://app.example.com/cb")
	if code != 0 || !regexp.MustCompile(`client_secret: \S{20,}`).MatchString(out) {
		t.Fatalf("create: %d %q %q", code, out, errs)
	}
	code, out, _ = cliRun(t, "", "clients", "get", "web")
	if code != 0 || !strings.Contains(out, "client_secret_basic") || !strings.Contains(out, "authorization_code") {
		t.Fatalf("get: %q", out)
	}
	if code, _, errs := cliRun(t, "", "clients", "get", "nope"); code != exitFailed || !strings.Contains(errs, `no client "nope"`) {
		t.Fatalf("unknown client: %d %q", code, errs)
	}
	// --id-token-alg on clients create/update is the client's
	// id_token_signed_response_alg (it shadows the server option of the
	// same name), checked against the algorithms the ring keeps keys for.
	if code, out, errs = cliRun(t, "", "clients", "update", "web", "--id-token-alg", "ES256"); code != 0 {
		t.Fatalf("update --id-token-alg: %d %q %q", code, out, errs)
	}
	if code, out, _ = cliRun(t, "", "clients", "get", "web"); code != 0 || !regexp.MustCompile(`id_token_signed_response_alg:\s+ES256`).MatchString(out) {
		t.Fatalf("get after --id-token-alg: %q", out)
	}
	if code, out, errs = cliRun(t, "", "clients", "create", "--id", "ed", "--redirect-uri", "https://app.example.com/cb", "--id-token-alg", "EdDSA"); code != exitFailed || !strings.Contains(errs, "id_token_signed_response_alg") {
		t.Fatalf("EdDSA without an EdDSA key: %d %q %q", code, out, errs)
	}
}

// TestEgressOptions: production reaches public addresses plus the networks
// the operator allows; --dev adds loopback over http, nothing else.
func TestEgressOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		cfg     config
		allowed map[string]bool
		http    bool
	}{
		{"case=production", config{EgressAllowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			map[string]bool{"10.1.2.3": true, "127.0.0.1": false, "169.254.169.254": false, "8.8.8.8": true}, false},
		{"case=dev", config{Dev: true},
			map[string]bool{"10.1.2.3": false, "127.0.0.1": true, "::1": true, "169.254.169.254": false}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.cfg.egressOptions()
			if o.AllowHTTP != tc.http {
				t.Fatalf("AllowHTTP = %v, want %v", o.AllowHTTP, tc.http)
			}
			c := egress.New(o)
			for a, want := range tc.allowed {
				if got := c.Permitted(netip.MustParseAddr(a)); got != want {
					t.Errorf("Permitted(%s) = %v, want %v", a, got, want)
				}
			}
		})
	}
}
