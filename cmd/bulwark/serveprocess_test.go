package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildBinary builds this command into a temporary directory and returns
// the binary's path.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bulwark")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// serveProcess is `bulwark serve` running as a child process.
type serveProcess struct {
	cmd *exec.Cmd
	// done is closed when the process has exited; err is then its exit
	// status.
	done chan struct{}
	err  error
	// public and admin are the listeners' addresses, from its log.
	public, admin string
	// log is everything it wrote to stderr.
	log *syncBuffer

	mu    sync.Mutex
	lines []map[string]any // the JSON log lines, in order
}

// startServe runs `bin serve args...` with the test's environment less
// BULWARK_* and DATABASE_URL, plus env, and returns once both listeners
// are up (their addresses read from the JSON log, so args must include
// --log-format json and a log level showing info). The process is killed
// when the test ends if it still runs.
func startServe(t *testing.T, bin string, env []string, args ...string) *serveProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...) // #nosec G204 -- the test's own binary
	cmd.Env = append(filterEnv(os.Environ()), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd, done: make(chan struct{}), log: &syncBuffer{}}
	read := make(chan struct{})
	go func() {
		// Read every line: the pipe must not fill up.
		defer close(read)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			_, _ = p.log.Write(append(sc.Bytes(), '\n'))
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.mu.Lock()
				p.lines = append(p.lines, m)
				p.mu.Unlock()
			}
		}
	}()
	go func() {
		<-read // Wait closes the pipe: read it to the end first
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	p.public = p.waitLog(t, "listening", "listener", "public")["addr"].(string)
	p.admin = p.waitLog(t, "listening", "listener", "admin")["addr"].(string)
	return p
}

// waitLog waits (generously) for the first log line with message msg and,
// given a key and value, that field, and returns it. The process exiting
// first fails the test.
func (p *serveProcess) waitLog(t *testing.T, msg string, field ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for exited := false; ; {
		p.mu.Lock()
		for _, m := range p.lines {
			if m["msg"] == msg && (len(field) < 2 || m[field[0]] == field[1]) {
				p.mu.Unlock()
				return m
			}
		}
		p.mu.Unlock()
		if exited {
			t.Fatalf("server exited (%v) before logging %q %v\n%s", p.err, msg, field, p.log.String())
		}
		select {
		case <-p.done:
			exited = true // every line is read by now: look once more
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q %v log line\n%s", msg, field, p.log.String())
		}
	}
}

// exitWithin waits up to d for the process to exit and returns its exit
// status; it fails the test if the process still runs.
func (p *serveProcess) exitWithin(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("server did not exit within %s", d)
		return nil
	}
}

// execBinary runs bin with args and env (the test's environment less
// BULWARK_* and DATABASE_URL) and returns its standard output; a non-zero
// exit fails the test.
func execBinary(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...) // #nosec G204 -- the test's own binary
	cmd.Env = append(filterEnv(os.Environ()), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.String())
	}
	return string(out)
}
