package forwardauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

const testRules = `
rules:
  - name: health
    path: /healthz
    anonymous: true
  - name: admin
    host: api.example.com
    path: /admin/**
    scopes: [admin]
  - name: orders-write
    methods: [POST, PUT]
    path: /orders/**
    scopes: [orders.write]
    audiences: [orders-api]
  - name: orders-read
    host: "*.example.com"
    methods: [GET]
    path: /orders/**
    scopes: [orders.read]
  - name: exact
    path: /exact
    scopes: [x]
`

func TestRuleMatch(t *testing.T) {
	set, err := ParseRules([]byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, host, path, want string
	}{
		{"case=anonymous", "GET", "", "/healthz", "health"},
		{"case=prefix base", "GET", "api.example.com", "/admin", "admin"},
		{"case=prefix child", "DELETE", "api.example.com:8443", "/admin/users/1", "admin"},
		{"case=host case-insensitive", "GET", "API.Example.com", "/admin/x", "admin"},
		{"case=other host", "GET", "evil.test", "/admin", ""},
		{"case=segment boundary", "GET", "api.example.com", "/adminx", ""},
		{"case=method picks rule", "POST", "shop.example.com", "/orders/1", "orders-write"},
		{"case=wildcard host", "GET", "shop.example.com", "/orders/1", "orders-read"},
		{"case=wildcard not apex", "GET", "example.com", "/orders/1", ""},
		{"case=method not listed", "DELETE", "shop.example.com", "/orders/1", ""},
		{"case=exact", "GET", "", "/exact", "exact"},
		{"case=exact trailing slash", "GET", "", "/exact/", "exact"},
		{"case=exact no children", "GET", "", "/exact/more", ""},
		{"case=unmatched", "GET", "", "/nothing", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := set.Match(tc.method, tc.host, tc.path)
			got := ""
			if ok {
				got = r.Name
			}
			if got != tc.want {
				t.Fatalf("Match(%s %s %s) = %q, want %q", tc.method, tc.host, tc.path, got, tc.want)
			}
		})
	}
}

func TestParseRulesReportsEveryProblem(t *testing.T) {
	_, err := ParseRules([]byte(`
rules:
  - path: /a
  - name: dup
    path: /b
  - name: dup
    path: /c/../d
  - name: m
    methods: [get]
    path: "/e/*"
  - name: anon
    path: /f
    anonymous: true
    scopes: [x]
  - name: h
    host: "a.*.com"
    path: /g
`))
	if err == nil {
		t.Fatal("invalid rules accepted")
	}
	for _, want := range []string{"rule 1: name is required", "duplicate name", `path "/c/../d"`, `method "get"`, `path "/e/*"`, "anonymous rule", "host wildcard"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := ParseRules([]byte("rules:\n  - name: a\n    path: /a\n    scope: [typo]\n")); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestRulesReloadKeepsPreviousOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	write := func(s string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().Add(-time.Hour)
	write("rules:\n  - name: a\n    path: /a\n    scopes: [x]\n", base)
	log, hook := test.NewNullLogger()
	r, err := LoadRules(path, log)
	if err != nil {
		t.Fatal(err)
	}
	var results []bool
	r.onReload = func(ok bool) { results = append(results, ok) }

	write("rules: [ this is not valid", base.Add(time.Minute))
	r.reloadIfChanged()
	r.reloadIfChanged() // the same broken file is reported once
	if _, ok := r.Current().Match("GET", "", "/a"); !ok {
		t.Fatal("previous rules were dropped")
	}
	if len(results) != 1 || results[0] || hook.LastEntry() == nil || hook.LastEntry().Level != logrus.ErrorLevel {
		t.Fatalf("invalid reload not reported once: %v", results)
	}

	write("rules:\n  - name: b\n    path: /b\n    scopes: [x]\n", base.Add(2*time.Minute))
	r.reloadIfChanged()
	if _, ok := r.Current().Match("GET", "", "/b"); !ok {
		t.Fatal("valid change not loaded")
	}
	if _, ok := r.Current().Match("GET", "", "/a"); ok {
		t.Fatal("old rule still in force")
	}

	if err := os.WriteFile(path, []byte("rules: ["), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRules(path, log); err == nil {
		t.Fatal("invalid rules file accepted at start")
	}
}

func TestRulesWatchPicksUpChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte("rules:\n  - name: a\n    path: /a\n    scopes: [x]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, _ := test.NewNullLogger()
	r, err := LoadRules(path, log)
	if err != nil {
		t.Fatal(err)
	}
	go r.Watch(t.Context(), 20*time.Millisecond)
	// A different size is a change even within the file system's mtime
	// granularity.
	if err := os.WriteFile(path, []byte("rules:\n  - name: bb\n    path: /bb\n    scopes: [x]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := r.Current().Match("GET", "", "/bb"); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("rules file change not picked up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
