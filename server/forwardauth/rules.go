package forwardauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"
)

// RulesFile is the YAML document an operator writes.
//
//	rules:
//	  - name: orders-read
//	    host: api.example.com      # optional: exact, or "*.example.com"
//	    methods: [GET, HEAD]       # optional: any method when empty
//	    path: /orders/**           # exact, or a prefix ending in "/**"
//	    scopes: [orders.read]      # all required
//	    audiences: [orders-api]    # optional: the token's aud must hold one
//	  - name: health
//	    path: /healthz
//	    anonymous: true            # no credential needed
//
// Rules are tried in file order; the first that matches the method, host
// and normalized path decides. A request no rule matches is denied.
type RulesFile struct {
	Rules []Rule `yaml:"rules"`
}

// Rule maps requests to what their credential must carry.
type Rule struct {
	Name      string   `yaml:"name"`
	Host      string   `yaml:"host"`
	Methods   []string `yaml:"methods"`
	Path      string   `yaml:"path"`
	Scopes    []string `yaml:"scopes"`
	Audiences []string `yaml:"audiences"`
	Anonymous bool     `yaml:"anonymous"`
}

// RuleSet is a validated, immutable list of rules.
type RuleSet struct {
	rules []compiled
}

type compiled struct {
	Rule
	prefix bool   // path ended in "/**"
	base   string // path without "/**"
}

// ParseRules reads and validates a rules document, reporting every problem
// at once. Unknown fields are errors, so a typo cannot silently widen
// access.
func ParseRules(data []byte) (*RuleSet, error) {
	var f RulesFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("forwardauth: rules: %w", err)
	}
	var problems []error
	seen := map[string]bool{}
	set := &RuleSet{}
	for i, r := range f.Rules {
		where := fmt.Sprintf("rule %d (%q)", i+1, r.Name)
		if r.Name == "" {
			problems = append(problems, fmt.Errorf("rule %d: name is required", i+1))
		} else if seen[r.Name] {
			problems = append(problems, fmt.Errorf("%s: duplicate name", where))
		}
		seen[r.Name] = true
		c := compiled{Rule: r}
		c.Host = strings.ToLower(r.Host)
		if strings.Contains(c.Host, "*") && (!strings.HasPrefix(c.Host, "*.") || strings.Count(c.Host, "*") > 1) {
			problems = append(problems, fmt.Errorf("%s: host wildcard must be a leading \"*.\"", where))
		}
		for j, m := range r.Methods {
			if m == "" || strings.ToUpper(m) != m || strings.ContainsFunc(m, func(c rune) bool { return c < 'A' || c > 'Z' }) {
				problems = append(problems, fmt.Errorf("%s: method %q must be an upper-case token like GET", where, m))
			}
			c.Methods[j] = m
		}
		c.base = r.Path
		if strings.HasSuffix(r.Path, "/**") {
			c.prefix = true
			c.base = strings.TrimSuffix(r.Path, "/**")
			if c.base == "" {
				c.base = "/"
			}
		}
		if norm, err := NormalizePath(c.base); err != nil || strings.Contains(c.base, "*") || strings.TrimSuffix(norm, "/") != strings.TrimSuffix(c.base, "/") {
			problems = append(problems, fmt.Errorf("%s: path %q must be a normalized absolute path, optionally ending in \"/**\"", where, r.Path))
		}
		for _, s := range r.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
				problems = append(problems, fmt.Errorf("%s: scope %q is not a valid scope token", where, s))
			}
		}
		if r.Anonymous && (len(r.Scopes) > 0 || len(r.Audiences) > 0) {
			problems = append(problems, fmt.Errorf("%s: an anonymous rule cannot require scopes or audiences", where))
		}
		set.rules = append(set.rules, c)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("forwardauth: rules: %w", errors.Join(problems...))
	}
	return set, nil
}

// Match returns the first rule for method, host and the normalized path;
// false means no rule matches (deny).
func (s *RuleSet) Match(method, host, path string) (*Rule, bool) {
	host = strings.ToLower(hostOnly(host))
	for i := range s.rules {
		r := &s.rules[i]
		if len(r.Methods) > 0 && !slices.Contains(r.Methods, method) {
			continue
		}
		if !hostMatches(r.Host, host) {
			continue
		}
		if !pathMatches(r, path) {
			continue
		}
		return &r.Rule, true
	}
	return nil, false
}

// Len is the number of rules.
func (s *RuleSet) Len() int { return len(s.rules) }

func hostOnly(h string) string {
	if strings.HasPrefix(h, "[") { // IPv6 literal
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

func hostMatches(pattern, host string) bool {
	switch {
	case pattern == "":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:]) && len(host) > len(pattern)-1
	}
	return pattern == host
}

// pathMatches compares whole segments: "/admin/**" matches "/admin" and
// "/admin/x" but not "/adminx".
func pathMatches(r *compiled, p string) bool {
	if !r.prefix {
		return p == r.base || p == r.base+"/" && !strings.HasSuffix(r.base, "/")
	}
	if r.base == "/" {
		return true
	}
	return p == r.base || strings.HasPrefix(p, r.base+"/")
}

// Rules holds the current RuleSet of a rules file and reloads it when the
// file changes. An invalid file at start is an error; an invalid file later
// keeps the previous rules (logged, and counted by OnReloadError).
type Rules struct {
	path    string
	current atomic.Pointer[RuleSet]
	stamp   fileStamp
	log     logrus.FieldLogger
	// onReload reports each reload attempt's outcome (metrics).
	onReload func(ok bool)
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// LoadRules reads the rules file; an invalid file is an error, so a server
// never starts with rules the operator did not mean.
func LoadRules(path string, log logrus.FieldLogger) (*Rules, error) {
	r := &Rules{path: path, log: log, onReload: func(bool) {}}
	st, set, err := r.read()
	if err != nil {
		return nil, err
	}
	r.stamp = st
	r.current.Store(set)
	return r, nil
}

// StaticRules wraps a fixed RuleSet (no file).
func StaticRules(set *RuleSet) *Rules {
	r := &Rules{onReload: func(bool) {}}
	r.current.Store(set)
	return r
}

// Current returns the rules in force.
func (r *Rules) Current() *RuleSet { return r.current.Load() }

func (r *Rules) read() (fileStamp, *RuleSet, error) {
	data, err := os.ReadFile(r.path) // #nosec G304 -- the operator names the rules file; reading it is the point
	if err != nil {
		return fileStamp{}, nil, fmt.Errorf("forwardauth: rules file: %w", err)
	}
	st, err := os.Stat(r.path)
	if err != nil {
		return fileStamp{}, nil, fmt.Errorf("forwardauth: rules file: %w", err)
	}
	set, err := ParseRules(data)
	if err != nil {
		return fileStamp{}, nil, err
	}
	return fileStamp{mod: st.ModTime(), size: st.Size()}, set, nil
}

// Watch polls the file every interval until ctx ends and swaps in a new
// RuleSet when its modification time or size changed and it is valid.
// Polling needs no platform support and survives editors that replace the
// file instead of writing it.
func (r *Rules) Watch(ctx context.Context, interval time.Duration) {
	if r.path == "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.reloadIfChanged()
		}
	}
}

func (r *Rules) reloadIfChanged() {
	st, err := os.Stat(r.path)
	var now fileStamp
	if err == nil {
		now = fileStamp{mod: st.ModTime(), size: st.Size()}
	}
	if now == r.stamp {
		return // unchanged (or still missing)
	}
	stamp, set, err := r.read()
	if err != nil {
		r.log.WithError(err).Error("forward-auth rules file is invalid; keeping the previous rules")
		r.onReload(false)
		// Remember the broken version, so it is reported once, not on
		// every poll; the next change is tried again.
		r.stamp = now
		return
	}
	r.stamp = stamp
	r.current.Store(set)
	r.onReload(true)
	r.log.WithField("rules", set.Len()).Info("forward-auth rules reloaded")
}
