package main

// The README is executable documentation: this test runs every shell block
// marked <!-- readme: run --> in README.md, in order, in one bash session,
// against a fresh Postgres database and the bulwark binary built once, and
// fails if a command fails or prints something other than the README shows.
//
// Conventions, stated in README.md's "How this README is tested":
//   - Every ```sh block is preceded by <!-- readme: run --> or by
//     <!-- readme: skip: REASON -->; a block with neither fails the test.
//   - "# " lines right after a command are its expected output, line by
//     line and in order (other output may come between them); "…" stands for
//     any text (secrets, ids, times). "exit status N" expects that status;
//     any other non-zero status is a failure.
//   - A command "bulwark serve …" (or "go run ./cmd/bulwark serve …") runs
//     until stopped: the runner starts it in the background, waits for
//     `bulwark healthcheck` to pass, and stops it (SIGTERM) before the
//     next serve and at the end.
//   - The README's database URL and the ports 4444/4445 are replaced by
//     the test's throwaway database and free ports; nothing else is changed.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// readmeDSN is the database URL the README uses.
const readmeDSN = "postgres://postgres@127.0.0.1:5432/bulwark?sslmode=disable"

type readmeStep struct {
	line    int      // README line of the command
	command string   // possibly several lines joined by "\\\n"
	expect  []string // expected output patterns
}

type readmeBlock struct {
	line  int
	run   bool
	steps []readmeStep
}

var readmeMarker = regexp.MustCompile(`^<!-- readme: (run|skip: .+) -->$`)

// parseReadme returns every ```sh block with its marker and steps.
func parseReadme(t *testing.T, text string) []readmeBlock {
	t.Helper()
	lines := strings.Split(text, "\n")
	var blocks []readmeBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```sh" {
			continue
		}
		b := readmeBlock{line: i + 1}
		j := i - 1
		for j >= 0 && strings.TrimSpace(lines[j]) == "" {
			j--
		}
		m := []string(nil)
		if j >= 0 {
			m = readmeMarker.FindStringSubmatch(strings.TrimSpace(lines[j]))
		}
		if m == nil {
			t.Errorf("README.md:%d: ```sh block without <!-- readme: run --> or <!-- readme: skip: REASON --> marker", i+1)
		} else {
			b.run = m[1] == "run"
		}
		i++
		var cur *readmeStep
		afterCommand := false
		for ; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			l := lines[i]
			trimmed := strings.TrimSpace(l)
			switch {
			case trimmed == "":
				afterCommand = false
			case strings.HasPrefix(trimmed, "#"):
				if afterCommand && cur != nil {
					cur.expect = append(cur.expect, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
				}
			default:
				b.steps = append(b.steps, readmeStep{line: i + 1, command: l})
				cur = &b.steps[len(b.steps)-1]
				for strings.HasSuffix(strings.TrimSpace(lines[i]), "\\") && i+1 < len(lines) {
					i++
					cur.command += "\n" + lines[i]
				}
				afterCommand = true
			}
		}
		blocks = append(blocks, b)
	}
	return blocks
}

// patternRE turns an expected line into an anchored regexp: "…" is any
// text, everything else literal.
func patternRE(p string) *regexp.Regexp {
	parts := strings.Split(p, "…")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile(`^` + strings.Join(parts, ".*") + `$`)
}

// squash collapses runs of blanks, so tables aligned by tabwriter match
// the README's single-spaced lines.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestREADMECommands(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseReadme(t, string(raw))
	if t.Failed() {
		t.FailNow()
	}
	runnable := 0
	for _, b := range blocks {
		if b.run {
			runnable += len(b.steps)
		}
	}
	if runnable < 20 {
		t.Fatalf("only %d runnable README commands found; markers lost?", runnable)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is required")
	}
	for _, tool := range []string{"curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required by the README's commands", tool)
		}
	}

	dsn := pgtest.NewDatabase(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "bulwark"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	work := t.TempDir()
	_, public, _ := net.SplitHostPort(freePort(t))
	_, admin, _ := net.SplitHostPort(freePort(t))
	rewrite := strings.NewReplacer(readmeDSN, dsn, "127.0.0.1:4444", "127.0.0.1:"+public, "127.0.0.1:4445", "127.0.0.1:"+admin,
		"go run ./cmd/bulwark", "bulwark")

	// One bash session runs every step; each step's output is framed by
	// markers carrying its index and exit status.
	var script strings.Builder
	script.WriteString("set -u\ncd " + shellQuote(work) + "\n")
	script.WriteString("export BULWARK_PUBLIC_ADDR=127.0.0.1:" + public + " BULWARK_ADMIN_ADDR=127.0.0.1:" + admin + "\n")
	script.WriteString(`stop_server() { if [ -n "${BW_SERVER:-}" ]; then kill -TERM "$BW_SERVER" 2>/dev/null; wait "$BW_SERVER" 2>/dev/null; BW_SERVER=; fi; }` + "\n")
	script.WriteString("trap stop_server EXIT\n")
	var steps []readmeStep
	for _, b := range blocks {
		if !b.run {
			continue
		}
		for _, s := range b.steps {
			idx := len(steps)
			steps = append(steps, s)
			cmd := rewrite.Replace(s.command)
			fmt.Fprintf(&script, "echo '@@step %d'\n", idx)
			if strings.HasPrefix(strings.TrimSpace(cmd), "bulwark serve") {
				// Servers run in the background until the next one or the end;
				// ready when the healthcheck passes (generous deadline).
				fmt.Fprintf(&script, "stop_server\n%s > serve-%d.log 2>&1 &\nBW_SERVER=$!\n", cmd, idx)
				fmt.Fprintf(&script, "rc=1; for i in $(seq 1 240); do if bulwark healthcheck >/dev/null 2>&1; then rc=0; break; fi; "+
					"if ! kill -0 $BW_SERVER 2>/dev/null; then break; fi; sleep 0.25; done\n"+
					"if [ $rc -ne 0 ]; then cat serve-%d.log; fi\necho \"@@rc $rc\"\n", idx)
				continue
			}
			// The newline ends output without one (curl's JSON).
			fmt.Fprintf(&script, "%s\nrc=$?; echo; echo \"@@rc $rc\"\n", cmd)
		}
	}
	script.WriteString("stop_server\n")

	sh := exec.Command("bash", "-c", script.String())
	sh.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+work)
	// Only what the README sets may configure the server.
	sh.Env = filterEnv(sh.Env)
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Logf("script: %v", err)
	}
	results := splitSteps(string(out))
	for i, s := range steps {
		for j, e := range s.expect {
			s.expect[j] = rewrite.Replace(e)
		}
		r, ok := results[i]
		if !ok {
			t.Fatalf("README.md:%d: never ran (a previous command ended the session?)\n%s", s.line, out)
		}
		checkStep(t, s, r)
	}
}

// filterEnv drops BULWARK_* and DATABASE_URL from the test's environment:
// the README's own exports must be enough.
func filterEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if strings.HasPrefix(e, "DATABASE_URL=") || (strings.HasPrefix(e, "BULWARK_") && !strings.HasPrefix(e, "BULWARK_TEST_PG=")) {
			continue
		}
		out = append(out, e)
	}
	return out
}

type stepResult struct {
	lines []string
	rc    string
}

func splitSteps(out string) map[int]stepResult {
	res := map[int]stepResult{}
	cur := -1
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		var n int
		if _, err := fmt.Sscanf(l, "@@step %d", &n); err == nil && strings.HasPrefix(l, "@@step ") {
			cur = n
			res[cur] = stepResult{}
			continue
		}
		if cur < 0 {
			continue
		}
		r := res[cur]
		if rc, ok := strings.CutPrefix(l, "@@rc "); ok {
			r.rc = rc
		} else {
			r.lines = append(r.lines, strings.TrimRight(l, "\r"))
		}
		res[cur] = r
	}
	return res
}

func checkStep(t *testing.T, s readmeStep, r stepResult) {
	t.Helper()
	lines := r.lines
	if r.rc != "0" {
		lines = append(lines, "exit status "+r.rc)
		want := "exit status " + r.rc
		found := false
		for _, e := range s.expect {
			if e == want {
				found = true
			}
		}
		if !found {
			t.Errorf("README.md:%d: %s\nfailed with status %s:\n%s", s.line, s.command, r.rc, strings.Join(r.lines, "\n"))
			return
		}
	}
	i := 0
	for _, e := range s.expect {
		re := patternRE(squash(e))
		for i < len(lines) && !re.MatchString(squash(lines[i])) {
			i++
		}
		if i == len(lines) {
			t.Errorf("README.md:%d: %s\nexpected a line %q (in order); got:\n%s", s.line, s.command, e, strings.Join(lines, "\n"))
			return
		}
		i++
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// The parser itself: markers are required, expected output is what follows
// a command, continuation lines join.
func TestParseReadme(t *testing.T) {
	text := "x\n<!-- readme: run -->\n```sh\n# intro\nbulwark a \\\n  --b\n# out1\n# out…2\n\nc\n```\n<!-- readme: skip: no docker here -->\n```sh\ndocker compose up\n```\n"
	blocks := parseReadme(t, text)
	if len(blocks) != 2 || !blocks[0].run || blocks[1].run {
		t.Fatalf("blocks %+v", blocks)
	}
	st := blocks[0].steps
	if len(st) != 2 || st[0].command != "bulwark a \\\n  --b" || len(st[0].expect) != 2 || len(st[1].expect) != 0 {
		t.Fatalf("steps %+v", st)
	}
	if !patternRE("out…2").MatchString("out-anything-2") || patternRE("out…2").MatchString("xout2") {
		t.Fatal("pattern")
	}
}
