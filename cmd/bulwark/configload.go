package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// configSection groups options in help, in the README and in the YAML file.
type configSection struct {
	Name, Title string
	Options     []string // flag names
}

// configSections lists every option by section. An option registered in
// configFlags but missing here lands in "other", so it still loads.
func configSections() []configSection {
	return []configSection{
		{"general", "General", []string{"dev", "log-format", "log-level", "pprof"}},
		{"listen", "Listeners and TLS", []string{"public-addr", "admin-addr", "issuer", "tls-cert", "tls-key", "trusted-proxies", "shutdown-delay"}},
		{"database", "Database", []string{"database-url", "database-wait", "migrate", "seed"}},
		{"secrets", "Master secret", []string{"secret", "secret-file"}},
		{"tokens", "Tokens and sessions", []string{"access-token-lifespan", "refresh-token-lifespan", "id-token-lifespan", "auth-code-lifespan", "login-session-lifespan", "client-secret-overlap", "allowed-scopes"}},
		{"signing", "Signing keys", []string{"signing-algs", "id-token-alg", "access-token-alg", "key-rotation-period", "key-lead-time", "key-retention", "jwks-max-age"}},
		{"apikeys", "API keys", []string{"apikey-rotation-period", "apikey-grace-period"}},
		{"protection", "Protection", []string{"rate-limits", "client-rate-limits", "client-rate-overrides", "account-rate-limits", "never-block", "stuffing-accounts", "refresh-reuse-alert", "block-on-refresh-reuse"}},
		{"forward_auth", "Forward-auth (gateways)", []string{"forward-auth-rules", "forward-auth-path", "forward-auth-addr", "forward-auth-rate-limit", "forward-auth-audit-sample", "forward-auth-deny-list-size", "forward-auth-headers"}},
		{"egress", "Outbound requests to client-registered URLs", []string{"egress-allowed-networks"}},
		{"registration", "Dynamic client registration (RFC 7591/7592)", []string{"registration", "registration-open", "registration-scopes", "registration-grant-types", "registration-auth-methods", "registration-token-retention"}},
		{"backchannel", "Back-channel logout", []string{"backchannel-poll-interval", "backchannel-timeout", "backchannel-lease", "backchannel-retry-min", "backchannel-retry-max", "backchannel-max-age", "backchannel-client-rate"}},
		{"dpop", "DPoP (sender-constrained tokens)", []string{"dpop-proof-window", "dpop-nonce"}},
		{"maintenance", "Maintenance", []string{"janitor-interval", "audit-retention"}},
	}
}

// notConfig are flags of the root command that are not options: they choose
// how the configuration is read, or are cobra's own.
func notConfig(name string) bool { return name == "config" || name == "help" }

// sensitive options never have their value echoed in an error.
func sensitive(name string) bool { return name == "secret" || name == "database-url" }

// envNames returns the environment variables of an option, preferred first:
// BULWARK_ plus the flag name in upper snake case. DATABASE_URL is accepted
// for the database URL because every Postgres tool reads it.
func envNames(flag string) []string {
	n := []string{"BULWARK_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
	if flag == "database-url" {
		n = append(n, "DATABASE_URL")
	}
	return n
}

// layer fills every option of fs not set on the command line from its
// environment variable, else from the YAML config file. Every value goes
// through the flag's own parser, so BULWARK_ACCESS_TOKEN_LIFESPAN=1 (no
// unit) or BULWARK_DEV=yes is an error, never a silent default. It returns
// every problem at once.
//
// The config file is --config, else BULWARK_CONFIG; it holds sections
// (configSections) of options named like their flags, e.g.
//
//	tokens:
//	  access-token-lifespan: 10m
func layer(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) error {
	var problems []error
	file := ""
	if f := fs.Lookup("config"); f != nil && f.Changed {
		file = f.Value.String()
	} else if v, ok := lookupEnv("BULWARK_CONFIG"); ok {
		file = v
	}
	fileValues := map[string]string{}
	if file != "" {
		vals, err := readConfigFile(file, fs)
		if err != nil {
			problems = append(problems, err)
		}
		fileValues = vals
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || notConfig(f.Name) {
			return
		}
		for _, env := range envNames(f.Name) {
			v, ok := lookupEnv(env)
			if !ok {
				continue
			}
			if err := fs.Set(f.Name, v); err != nil {
				problems = append(problems, valueProblem(env+"="+quoted(f.Name, v), err))
			}
			return
		}
		if v, ok := fileValues[f.Name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				problems = append(problems, valueProblem(file+": "+sectionOf(f.Name)+"."+f.Name+": "+quoted(f.Name, v), err))
			}
		}
	})
	return errors.Join(problems...)
}

func quoted(name, v string) string {
	if sensitive(name) {
		return "(value hidden)"
	}
	return fmt.Sprintf("%q", v)
}

// valueProblem says what was wrong and which format is expected.
func valueProblem(where string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "time: "):
		msg = "not a duration: use Go duration syntax such as 90s, 10m or 720h"
	case strings.Contains(msg, "strconv.ParseBool"):
		msg = "not a boolean: use true or false"
	case strings.Contains(msg, "strconv.Parse"):
		msg = "not a number"
	}
	return fmt.Errorf("%s: %s", where, msg)
}

func sectionOf(flag string) string {
	for _, s := range configSections() {
		if slices.Contains(s.Options, flag) {
			return s.Name
		}
	}
	return "other"
}

// readConfigFile reads the YAML configuration file into flag name → value.
// Unknown sections or options are errors, so a typo is never ignored.
func readConfigFile(path string, fs *pflag.FlagSet) (map[string]string, error) {
	raw, err := os.ReadFile(path) // #nosec G304 -- the operator names the configuration file
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var doc map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	out := map[string]string{}
	var problems []error
	known := func(name string) bool {
		f := fs.Lookup(name)
		return f != nil && !notConfig(name)
	}
	sections := map[string]bool{"other": true}
	for _, s := range configSections() {
		sections[s.Name] = true
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, sec := range keys {
		node := doc[sec]
		if !sections[sec] {
			problems = append(problems, fmt.Errorf("config file %s: unknown section %q (sections: %s)", path, sec, sectionNames()))
			continue
		}
		if node.Kind != yaml.MappingNode {
			problems = append(problems, fmt.Errorf("config file %s: section %q must be a mapping of options", path, sec))
			continue
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			name := strings.ReplaceAll(node.Content[i].Value, "_", "-")
			val := node.Content[i+1]
			if !known(name) || (sectionOf(name) != sec) {
				problems = append(problems, fmt.Errorf("config file %s: %s.%s: unknown option", path, sec, node.Content[i].Value))
				continue
			}
			v, err := scalar(val)
			if err != nil {
				problems = append(problems, fmt.Errorf("config file %s: %s.%s: %w", path, sec, name, err))
				continue
			}
			out[name] = v
		}
	}
	return out, errors.Join(problems...)
}

// scalar turns a YAML value into the flag's text form: a list becomes
// comma-separated.
func scalar(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		var parts []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return "", errors.New("list items must be plain values")
			}
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("must be a plain value or a list")
}

func sectionNames() string {
	var n []string
	for _, s := range configSections() {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}
