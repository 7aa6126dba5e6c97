// Command bulwark is the one Bulwark binary: serve, migrate, keys, apikeys,
// users, clients, janitor, healthcheck, version. The command tree is in
// cli.go; the dependency graph of serve is built explicitly in serve.go
// (no registry, no globals): store → secret box → hasher → key ring →
// OAuth provider → server.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses: 0 success, 1 the command failed, 2 the invocation was
// wrong (unknown command, flag or argument; unparsable configuration).
const (
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs the command line and maps its outcome to an exit status,
// printing the error (never a secret: errors carry none).
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := runIO(ctx, args, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "bulwark: %s\nRun '%s --help' for usage.\n", ue.msg, ue.cmd)
		return exitUsage
	}
	fmt.Fprintln(stderr, "bulwark:", err)
	return exitFailed
}

// run is runIO without standard input (tests).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runIO(ctx, args, eofReader{}, stdout, stderr)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// runIO builds the command tree and runs args.
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var ue usageError
	if errors.As(err, &ue) && ue.cmd == "" {
		ue.cmd = "bulwark"
		if cmd != nil {
			ue.cmd = cmd.CommandPath()
		}
		return ue
	}
	return err
}

// usageError is a wrong invocation: exit status 2 with a pointer to help.
type usageError struct{ msg, cmd string }

func (e usageError) Error() string { return e.msg }
