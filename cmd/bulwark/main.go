// Command bulwark is the one Bulwark binary: serve, migrate, keys, janitor,
// version. It builds the whole dependency graph explicitly (no registry, no
// globals): store → secret box → hasher → key ring → OAuth provider →
// server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `bulwark — OAuth 2.0 / OpenID Connect authorization server

Usage:
  bulwark serve [--dev] [flags]     run the server (bulwark serve --help for flags)
  bulwark migrate up|status         apply or show database migrations (DATABASE_URL)
  bulwark keys list|rotate|revoke KID|reseal
                                    manage signing keys
  bulwark apikeys create|list|rotate ID|revoke ID
                                    manage API keys (create: --name --owner-type --owner-id --scopes)
  bulwark bench [flags]             load-test a running server (BULWARK_BENCH_ADMIN_KEY; see docs/performance.md)
  bulwark janitor                   delete expired tokens, codes and sessions; trim audit
  bulwark version                   print the version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "bulwark:", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command"}
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, args[1:], stdout)
	case "keys":
		return cmdKeys(ctx, args[1:], stdout)
	case "apikeys":
		return cmdAPIKeys(ctx, args[1:], stdout)
	case "janitor":
		return cmdJanitor(ctx, args[1:], stdout)
	case "bench":
		return cmdBench(ctx, args[1:], stdout, stderr)
	case "version":
		_, err := fmt.Fprintln(stdout, "bulwark", version)
		return err
	case "help", "-h", "--help":
		_, err := fmt.Fprint(stdout, usage)
		return err
	}
	return usageError{"unknown command " + args[0]}
}
