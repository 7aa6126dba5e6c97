package main

// The README's Caddy forward_auth configuration, run for real: Debian's
// caddy in front of a tiny upstream, asking the assembled server's
// /forward-auth on a real Postgres.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// caddyfile is the README's Caddy snippet on a test port: forward_auth
// sends X-Forwarded-Method and X-Forwarded-Uri itself, and copy_headers
// puts the auth answer's identity headers on the upstream request.
const caddyfile = `{
	admin off
	auto_https off
}
http://%[1]s {
	forward_auth %[2]s {
		uri /forward-auth
		copy_headers X-Auth-Subject X-Auth-Client-Id X-Auth-Scope X-Auth-Token-Type
	}
	reverse_proxy %[3]s
}
`

// startCaddy runs caddy as a child process and returns its base URL.
func startCaddy(t *testing.T, authHostPort, upstreamHostPort string) string {
	t.Helper()
	bin, err := exec.LookPath("caddy")
	if err != nil {
		t.Fatal("caddy is not installed (.ci/run installs Debian's caddy)")
	}
	dir := t.TempDir()
	addr := freePort(t)
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(caddyfile, addr, authHostPort, upstreamHostPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile") // #nosec G204 -- test: our own binary and config
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	return startGateway(t, cmd, "http://"+addr, func() string { return "" })
}

func TestE2EForwardAuthBehindCaddy(t *testing.T) {
	b := startGatewayBackend(t)
	checkGateway(t, b, startCaddy(t, b.authHost, b.upstream))
}
