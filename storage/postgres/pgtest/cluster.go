package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a private Postgres server of one test: its own data directory
// and port, so the test may stop and start it (a real database restart)
// without disturbing the shared server other tests use. Postgres refuses
// to run as root; as root the cluster runs as the "postgres" OS user.
type Cluster struct {
	t      testing.TB
	bin    string
	dir    string
	port   int
	asUser string
}

// searchDirs are where initdb and pg_ctl are looked for after $PATH.
var searchDirs = []string{"/usr/local/bin", "/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"}

// NewCluster initialises and starts a private cluster (trust auth on
// 127.0.0.1, fsync off: it is thrown away) and stops and removes it when
// the test ends. Without the Postgres server binaries the test is skipped,
// or fails under CI=true.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := serverBinDir()
	if err != nil {
		unreachable(t, err)
	}
	c := &Cluster{t: t, bin: bin}
	if os.Geteuid() == 0 {
		c.asUser = "postgres"
	}
	dir, err := os.MkdirTemp("", "bulwark-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if c.asUser != "" {
		u, err := user.Lookup(c.asUser)
		if err != nil {
			unreachable(t, fmt.Errorf("running as root and no %q OS user for the private cluster: %w", c.asUser, err))
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	c.port = freePort(t)
	c.run("initdb", "--no-sync", "-A", "trust", "-U", "postgres", "-E", "UTF8", "-D", c.data())
	c.Start()
	t.Cleanup(func() {
		// Immediate: the test is over, nothing needs a clean shutdown.
		_ = c.cmd("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop").Run()
	})
	return c
}

// DSN is the cluster's "postgres" database.
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "120", "start",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", c.port, c.dir))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.DSN())
		if err == nil {
			_ = conn.Close(ctx)
			return
		}
		if ctx.Err() != nil {
			c.t.Fatalf("pgtest: private cluster does not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the server in "fast" mode: open sessions are terminated (the
// clients see 57P01 admin_shutdown, then refused connections), as in a
// restart or failover.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "-t", "120", "stop")
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) cmd(tool string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, tool)
	if c.asUser != "" {
		return exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...) // #nosec G204 -- test helper, fixed tool names
	}
	return exec.Command(path, args...) // #nosec G204 -- test helper, fixed tool names
}

func (c *Cluster) run(tool string, args ...string) {
	c.t.Helper()
	if out, err := c.cmd(tool, args...).CombinedOutput(); err != nil {
		c.t.Fatalf("pgtest: %s: %v\n%s", tool, err, out)
	}
}

// serverBinDir finds the directory holding initdb and pg_ctl.
func serverBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "pg_ctl")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	for _, d := range searchDirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("initdb and pg_ctl not found in $PATH or %v", searchDirs)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
