package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/server/egress"
	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/server/tlsconf"
	"github.com/spf13/pflag"
)

// config is the one configuration of every command. Each option is a flag
// registered in configFlags; load (configload.go) then fills every option
// not given as a flag from its BULWARK_* environment variable, then from
// the optional YAML file (--config), and reports every unparsable value at
// once. Secrets may also come from files (BULWARK_SECRET_FILE). The
// sections the options are grouped in (help, README, YAML) are listed in
// configSections.
type config struct {
	Dev         bool
	PublicAddr  string
	AdminAddr   string
	Issuer      string
	DatabaseURL string
	Secrets     [][]byte
	SeedFile    string
	Migrate     bool
	LogFormat   string
	LogLevel    string
	TLSCert     string
	TLSKey      string
	// PProf mounts net/http/pprof on the admin listener (loopback peers only).
	PProf bool

	AccessTokenLifespan  time.Duration
	RefreshTokenLifespan time.Duration
	IDTokenLifespan      time.Duration
	AuthCodeLifespan     time.Duration
	LoginLifespan        time.Duration

	SigningAlgs    []string
	IDTokenAlg     string
	AccessTokenAlg string
	KeyRotation    time.Duration
	KeyLeadTime    time.Duration
	KeyRetention   time.Duration
	JWKSMaxAge     time.Duration

	TrustedProxies      []netip.Prefix
	RateLimits          map[string]protect.Limit
	ClientRateLimits    map[string]protect.Limit
	ClientRateOverrides map[string]protect.Limit
	AccountRateLimits   map[string]protect.Limit
	AuditRetention      time.Duration
	APIKeyRotation      time.Duration
	JanitorInterval     time.Duration
	SecretOverlap       time.Duration
	AllowedScopes       []string

	allowedScopesRaw string
	APIKeyGrace      time.Duration

	// Protection pipeline (issue 10). NeverBlock networks are never
	// blocked; StuffingAccounts distinct accounts failing from one address
	// within 10m block it; RefreshReuseThreshold reuses by one client
	// within 10m raise an alert, and block that client only with
	// BlockOnRefreshReuse.
	NeverBlock            []netip.Prefix
	StuffingAccounts      int
	RefreshReuseThreshold int
	BlockOnRefreshReuse   bool
	neverBlockRaw         string

	// EgressAllowed are non-public networks that outbound requests to
	// client-registered URLs may reach (server/egress).
	EgressAllowed        []netip.Prefix
	egressAllowedRaw     string
	accountRateLimitsRaw string
	// ShutdownDelay is how long /readyz answers 503 after SIGTERM before
	// the listeners stop accepting, so load balancers stop sending first.
	ShutdownDelay time.Duration
	// DatabaseWait is how long serve retries an unreachable database at
	// start (with backoff, one log line per attempt) before giving up.
	DatabaseWait time.Duration
	// Forward-auth endpoint (cmd/bulwark/forwardauth.go).
	forwardAuthConfig
	// Dynamic client registration (cmd/bulwark/registration.go).
	registrationConfig
	// Back-channel logout delivery (cmd/bulwark/backchannel.go).
	backchannelConfig

	// DPoP (RFC 9449): how far a proof's iat may lie from the clock, and
	// where the server's nonce is required (server/dpop).
	DPoPWindow   time.Duration
	DPoPNonce    dpop.NoncePolicy
	dpopNonceRaw string

	// now replaces the clock (tests only; no flag sets it).
	now func() time.Time
	// testEgress replaces the egress rules (tests only; no flag sets it):
	// test servers (JWKS, logout receivers) listen on loopback over http.
	testEgress *egress.Options

	trustedProxiesRaw   string
	rateLimitsRaw       string
	clientRateLimitsRaw string
	clientOverridesRaw  string
}

// Default rate limits, as "class=rate:burst" (rate per second), per
// replica. Per source IP only FAILED requests count (400/401/403, invalid
// tokens at introspection): an address shared by thousands of users (NAT,
// a load balancer before --trusted-proxies is set) never runs out on
// successful traffic. Successful traffic is limited per claimed client id
// and per API key, generously: a busy confidential client may mint 100
// tokens a second, sustained. See README "Protection defaults".
const (
	defaultRateLimits       = "token=2:100,introspect=5:200,revoke=2:100,par=2:100,login=1:30,admin=1:30,userinfo=5:200,register=0.2:20"
	defaultClientRateLimits = "token=100:200,introspect=500:1000,revoke=100:200,par=50:100,admin=50:100,register=1:20"
	// Per account a sign-in form names: 20 attempts at once, then one
	// every 2 seconds, whatever the address.
	defaultAccountRateLimits = "login=0.5:20"
)

// Anomaly thresholds: distinct accounts failing sign-in from one address
// within 10 minutes (credential stuffing), and refresh-token reuses by one
// client within 10 minutes (alert).
const (
	defaultStuffingAccounts  = 20
	defaultRefreshReuseAlert = 10
)

// parseLimits reads "key=rate:burst,key=rate:burst".
func parseLimits(raw string) (map[string]protect.Limit, error) {
	out := map[string]protect.Limit{}
	for _, part := range strings.Split(raw, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		key, spec, ok := strings.Cut(part, "=")
		rate, burst, ok2 := strings.Cut(spec, ":")
		if !ok || !ok2 || key == "" {
			return nil, fmt.Errorf("%q: use key=rate:burst, e.g. token=20:40", part)
		}
		r, err1 := strconv.ParseFloat(rate, 64)
		b, err2 := strconv.Atoi(burst)
		if err1 != nil || err2 != nil || r <= 0 || b <= 0 {
			return nil, fmt.Errorf("%q: rate and burst must be positive numbers", part)
		}
		out[key] = protect.Limit{Rate: r, Burst: b}
	}
	return out, nil
}

// envOr returns the environment variable's value, or def. It only makes
// the flag's help show the effective default: load re-applies every
// BULWARK_* variable through the flag's own parser, so a bad value is an
// error there, never a silent default.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

// configFlags registers the serve flags on fs, with environment defaults.
func configFlags(fs *pflag.FlagSet, c *config) (secretFile *string, secretEnv *string, algs *string) {
	fs.BoolVar(&c.Dev, "dev", envBool("BULWARK_DEV", false), "development mode: in-process store, loopback issuer, generated secrets; nothing persists")
	fs.StringVar(&c.PublicAddr, "public-addr", envOr("BULWARK_PUBLIC_ADDR", ":4444"), "public listener address (OAuth endpoints, login pages)")
	fs.StringVar(&c.AdminAddr, "admin-addr", envOr("BULWARK_ADMIN_ADDR", "127.0.0.1:4445"), "admin listener address (admin API, console, metrics)")
	fs.StringVar(&c.Issuer, "issuer", envOr("BULWARK_ISSUER", ""), "issuer URL, e.g. https://auth.example.com")
	fs.StringVar(&c.DatabaseURL, "database-url", envOr("DATABASE_URL", ""), "Postgres connection URL")
	fs.StringVar(&c.SeedFile, "seed", envOr("BULWARK_SEED", ""), "seed file (YAML or JSON) of clients and users to create or update at start")
	fs.BoolVar(&c.Migrate, "migrate", envBool("BULWARK_MIGRATE", false), "apply pending database migrations before serving")
	fs.StringVar(&c.LogFormat, "log-format", envOr("BULWARK_LOG_FORMAT", "json"), "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", envOr("BULWARK_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	fs.StringVar(&c.TLSCert, "tls-cert", envOr("BULWARK_TLS_CERT", ""), "TLS certificate file (PEM); enables TLS on both listeners")
	fs.StringVar(&c.TLSKey, "tls-key", envOr("BULWARK_TLS_KEY", ""), "TLS private key file (PEM)")
	fs.BoolVar(&c.PProf, "pprof", envBool("BULWARK_PPROF", false), "serve Go profiles under /debug/pprof/ on the admin listener, to loopback peers only")
	fs.DurationVar(&c.AccessTokenLifespan, "access-token-lifespan", envDuration("BULWARK_ACCESS_TOKEN_LIFESPAN", 10*time.Minute), "access token lifetime")
	fs.DurationVar(&c.RefreshTokenLifespan, "refresh-token-lifespan", envDuration("BULWARK_REFRESH_TOKEN_LIFESPAN", 30*24*time.Hour), "refresh token lifetime")
	fs.DurationVar(&c.IDTokenLifespan, "id-token-lifespan", envDuration("BULWARK_ID_TOKEN_LIFESPAN", time.Hour), "ID token lifetime")
	fs.DurationVar(&c.AuthCodeLifespan, "auth-code-lifespan", envDuration("BULWARK_AUTH_CODE_LIFESPAN", 5*time.Minute), "authorization code lifetime (at most 10m)")
	fs.DurationVar(&c.LoginLifespan, "login-session-lifespan", envDuration("BULWARK_LOGIN_SESSION_LIFESPAN", 12*time.Hour), "browser login session lifetime")
	fs.StringVar(&c.IDTokenAlg, "id-token-alg", envOr("BULWARK_ID_TOKEN_ALG", "RS256"), "ID token signing algorithm (RS256 or ES256)")
	fs.StringVar(&c.AccessTokenAlg, "access-token-alg", envOr("BULWARK_ACCESS_TOKEN_ALG", "ES256"), "access token signing algorithm (ES256 or RS256)")
	fs.DurationVar(&c.KeyRotation, "key-rotation-period", envDuration("BULWARK_KEY_ROTATION_PERIOD", 30*24*time.Hour), "signing key rotation period")
	fs.DurationVar(&c.KeyLeadTime, "key-lead-time", envDuration("BULWARK_KEY_LEAD_TIME", 48*time.Hour), "how long a next key is published before it signs")
	fs.DurationVar(&c.KeyRetention, "key-retention", envDuration("BULWARK_KEY_RETENTION", 7*24*time.Hour), "how long a retired key stays in the JWKS")
	fs.DurationVar(&c.JWKSMaxAge, "jwks-max-age", envDuration("BULWARK_JWKS_MAX_AGE", 15*time.Minute), "JWKS Cache-Control max-age")
	fs.StringVar(&c.trustedProxiesRaw, "trusted-proxies", envOr("BULWARK_TRUSTED_PROXIES", ""), "comma-separated proxy addresses/CIDRs whose X-Forwarded-For is trusted (none by default)")
	fs.StringVar(&c.rateLimitsRaw, "rate-limits", envOr("BULWARK_RATE_LIMITS", defaultRateLimits), "per-IP limits by endpoint class, class=rate:burst (per second, per replica)")
	fs.StringVar(&c.clientRateLimitsRaw, "client-rate-limits", envOr("BULWARK_CLIENT_RATE_LIMITS", defaultClientRateLimits), "per-client limits by endpoint class, class=rate:burst")
	fs.StringVar(&c.clientOverridesRaw, "client-rate-overrides", envOr("BULWARK_CLIENT_RATE_OVERRIDES", ""), "per-client overrides, client_id=rate:burst")
	fs.DurationVar(&c.AuditRetention, "audit-retention", envDuration("BULWARK_AUDIT_RETENTION", 365*24*time.Hour), "how long audit events are kept (janitor trims older ones)")
	fs.StringVar(&c.allowedScopesRaw, "allowed-scopes", envOr("BULWARK_ALLOWED_SCOPES", ""), "scopes clients may be registered with (space-separated); empty allows any scope")
	fs.DurationVar(&c.SecretOverlap, "client-secret-overlap", envDuration("BULWARK_CLIENT_SECRET_OVERLAP", 24*time.Hour), "how long a rotated client secret keeps working")
	fs.DurationVar(&c.JanitorInterval, "janitor-interval", envDuration("BULWARK_JANITOR_INTERVAL", time.Hour), "how often the built-in janitor removes expired rows (one replica per round; 0 disables)")
	fs.DurationVar(&c.APIKeyRotation, "apikey-rotation-period", envDuration("BULWARK_APIKEY_ROTATION_PERIOD", 90*24*time.Hour), "default API key rotation period")
	fs.DurationVar(&c.APIKeyGrace, "apikey-grace-period", envDuration("BULWARK_APIKEY_GRACE_PERIOD", 7*24*time.Hour), "default API key grace period after rotation")
	// Protection pipeline flags (issue 10).
	fs.StringVar(&c.egressAllowedRaw, "egress-allowed-networks", envOr("BULWARK_EGRESS_ALLOWED_NETWORKS", ""), "comma-separated CIDRs of non-public networks that client-registered URLs (jwks_uri, back-channel logout) may reach; public addresses only by default")
	fs.StringVar(&c.neverBlockRaw, "never-block", envOr("BULWARK_NEVER_BLOCK", ""), "comma-separated addresses/CIDRs that are never blocked (office, partner egress, the load balancer)")
	fs.StringVar(&c.accountRateLimitsRaw, "account-rate-limits", envOr("BULWARK_ACCOUNT_RATE_LIMITS", defaultAccountRateLimits), "per-account limits on sign-in forms, class=rate:burst")
	fs.IntVar(&c.StuffingAccounts, "stuffing-accounts", envInt("BULWARK_STUFFING_ACCOUNTS", defaultStuffingAccounts), "distinct accounts failing sign-in from one address within 10m that block the address for 15m")
	fs.IntVar(&c.RefreshReuseThreshold, "refresh-reuse-alert", envInt("BULWARK_REFRESH_REUSE_ALERT", defaultRefreshReuseAlert), "refresh-token reuses by one client within 10m that raise an alert (audit anomaly.alert, metric)")
	fs.BoolVar(&c.BlockOnRefreshReuse, "block-on-refresh-reuse", envBool("BULWARK_BLOCK_ON_REFRESH_REUSE", false), "also block the client (never the address) for 15m when --refresh-reuse-alert is crossed")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", envDuration("BULWARK_SHUTDOWN_DELAY", 5*time.Second), "after SIGTERM, how long /readyz answers 503 before the listeners drain")
	fs.DurationVar(&c.DatabaseWait, "database-wait", envDuration("BULWARK_DATABASE_WAIT", time.Minute), "how long serve waits for an unreachable database at start")
	secretEnv = fs.String("secret", "", "master secret(s), newest first, comma-separated (prefer BULWARK_SECRET or BULWARK_SECRET_FILE)")
	secretFile = fs.String("secret-file", envOr("BULWARK_SECRET_FILE", ""), "file holding the master secret(s), one per line, newest first")
	forwardAuthFlags(fs, &c.forwardAuthConfig)
	registrationFlags(fs, &c.registrationConfig)
	backchannelFlags(fs, &c.backchannelConfig)
	fs.DurationVar(&c.DPoPWindow, "dpop-proof-window", envDuration("BULWARK_DPOP_PROOF_WINDOW", dpop.DefaultWindow), "how far a DPoP proof's iat may lie from the server's clock, either way (at most 10m)")
	fs.StringVar(&c.dpopNonceRaw, "dpop-nonce", envOr("BULWARK_DPOP_NONCE", "token"), "where DPoP proofs must carry the server's nonce: token (token endpoint), all (also userinfo and forward-auth) or off")
	algs = fs.String("signing-algs", envOr("BULWARK_SIGNING_ALGS", "ES256,RS256"), "signing algorithms with active keys")
	return
}

// need says what a command requires of the configuration beyond valid
// values.
type need uint8

const (
	needDB need = 1 << iota
	needSecret
	needIssuer
	// needServe is everything serve requires outside --dev.
	needServe = needDB | needSecret | needIssuer
)

// finish resolves secrets and lists, then validates everything serve needs
// in one pass.
func (c *config) finish(secretFlag, secretFile, algs string) error {
	n := needServe
	if c.Dev {
		n = 0
	}
	return c.check(secretFlag, secretFile, algs, n)
}

// check resolves secrets and lists and validates every value, plus what
// the command needs, reporting every problem at once.
func (c *config) check(secretFlag, secretFile, algs string, needs need) error {
	secrets, problems := loadSecrets(secretFlag, secretFile)
	c.Secrets = secrets
	for _, a := range strings.Split(algs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.SigningAlgs = append(c.SigningAlgs, a)
		}
	}
	if needs&needSecret != 0 && len(c.Secrets) == 0 {
		problems = append(problems, errors.New("BULWARK_SECRET (or BULWARK_SECRET_FILE, --secret-file) is required"))
	}
	if needs&needDB != 0 && c.DatabaseURL == "" {
		problems = append(problems, errors.New("DATABASE_URL (or BULWARK_DATABASE_URL, --database-url) is required"))
	}
	if needs&needIssuer != 0 && c.Issuer == "" {
		problems = append(problems, errors.New("BULWARK_ISSUER (or --issuer) is required"))
	}
	if c.ShutdownDelay < 0 || c.DatabaseWait < 0 {
		problems = append(problems, errors.New("shutdown delay and database wait must not be negative"))
	}
	if c.Issuer != "" {
		c.Issuer = strings.TrimRight(c.Issuer, "/")
		if err := tlsconf.CheckIssuer(c.Issuer, c.Dev); err != nil {
			problems = append(problems, err)
		}
	}
	var perr []error
	c.TrustedProxies, perr = parsePrefixes("trusted proxy", c.trustedProxiesRaw)
	problems = append(problems, perr...)
	c.NeverBlock, perr = parsePrefixes("--never-block", c.neverBlockRaw)
	problems = append(problems, perr...)
	c.EgressAllowed, perr = parsePrefixes("--egress-allowed-networks", c.egressAllowedRaw)
	problems = append(problems, perr...)
	// Zero takes the default, so a config built without the flags (tests,
	// another CLI front end) still gets safe thresholds.
	if c.StuffingAccounts == 0 {
		c.StuffingAccounts = defaultStuffingAccounts
	}
	if c.RefreshReuseThreshold == 0 {
		c.RefreshReuseThreshold = defaultRefreshReuseAlert
	}
	if c.StuffingAccounts < 0 || c.RefreshReuseThreshold < 0 {
		problems = append(problems, errors.New("--stuffing-accounts and --refresh-reuse-alert must be positive"))
	}
	c.AllowedScopes = strings.FieldsFunc(c.allowedScopesRaw, func(r rune) bool { return r == ' ' || r == ',' })
	var err error
	if c.RateLimits, err = parseLimits(c.rateLimitsRaw); err != nil {
		problems = append(problems, fmt.Errorf("--rate-limits: %w", err))
	}
	if c.ClientRateLimits, err = parseLimits(c.clientRateLimitsRaw); err != nil {
		problems = append(problems, fmt.Errorf("--client-rate-limits: %w", err))
	}
	if c.AccountRateLimits, err = parseLimits(c.accountRateLimitsRaw); err != nil {
		problems = append(problems, fmt.Errorf("--account-rate-limits: %w", err))
	}
	if c.ClientRateOverrides, err = parseLimits(c.clientOverridesRaw); err != nil {
		problems = append(problems, fmt.Errorf("--client-rate-overrides: %w", err))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		problems = append(problems, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.AuthCodeLifespan <= 0 || c.AuthCodeLifespan > 10*time.Minute {
		problems = append(problems, errors.New("auth code lifespan must be between 1s and 10m"))
	}
	if c.AccessTokenLifespan <= 0 || c.RefreshTokenLifespan <= 0 || c.IDTokenLifespan <= 0 || c.LoginLifespan <= 0 {
		problems = append(problems, errors.New("token and session lifespans must be positive"))
	}
	if longest := max(c.AccessTokenLifespan, c.IDTokenLifespan); c.KeyRetention < longest+5*time.Minute {
		problems = append(problems, fmt.Errorf("key retention %s must be at least the longest access/ID token lifetime (%s) plus 5m, or tokens would outlive their key in the JWKS", c.KeyRetention, longest))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		problems = append(problems, fmt.Errorf("log format %q: use json or text", c.LogFormat))
	}
	for _, a := range append([]string{c.IDTokenAlg, c.AccessTokenAlg}, c.SigningAlgs...) {
		if a != "ES256" && a != "RS256" && a != "EdDSA" {
			problems = append(problems, fmt.Errorf("signing algorithm %q: use ES256, RS256 or EdDSA", a))
		}
	}
	if !slices.Contains(c.SigningAlgs, c.IDTokenAlg) || !slices.Contains(c.SigningAlgs, c.AccessTokenAlg) {
		problems = append(problems, errors.New("--signing-algs must include both the ID token and the access token algorithm"))
	}
	problems = append(problems, c.finishForwardAuth()...)
	problems = append(problems, c.finishRegistration(c.AllowedScopes)...)
	problems = append(problems, c.finishBackchannel()...)
	if c.DPoPNonce, err = dpop.ParseNoncePolicy(c.dpopNonceRaw); err != nil {
		problems = append(problems, fmt.Errorf("--dpop-nonce %q: use token, all or off", c.dpopNonceRaw))
	}
	if c.DPoPWindow == 0 {
		c.DPoPWindow = dpop.DefaultWindow
	}
	if c.DPoPWindow < time.Second || c.DPoPWindow > dpop.MaxWindow {
		problems = append(problems, fmt.Errorf("--dpop-proof-window %s: use a duration between 1s and %s", c.DPoPWindow, dpop.MaxWindow))
	}
	return errors.Join(problems...)
}

// parsePrefixes reads a comma-separated list of addresses and CIDR
// prefixes (an address is a one-address prefix).
func parsePrefixes(what, raw string) ([]netip.Prefix, []error) {
	var out []netip.Prefix
	var problems []error
	for _, p := range strings.Split(raw, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				problems = append(problems, fmt.Errorf("%s %q: use an address or CIDR prefix", what, p))
				continue
			}
			pfx = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, pfx.Masked())
	}
	return out, problems
}

// loadSecrets reads the master secret(s), newest first: from the flag, else
// BULWARK_SECRET (comma-separated), or from a file (one per line).
func loadSecrets(secretFlag, secretFile string) ([][]byte, []error) {
	var problems []error
	raw := secretFlag
	if raw == "" {
		raw = os.Getenv("BULWARK_SECRET")
	}
	if secretFile != "" {
		b, err := os.ReadFile(secretFile) // #nosec G304 G703 -- the operator names the secret file; reading it is the point
		if err != nil {
			problems = append(problems, fmt.Errorf("BULWARK_SECRET_FILE: %w", err))
		} else {
			raw = strings.Join(strings.Fields(string(b)), ",")
		}
	}
	var secrets [][]byte
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, []byte(s))
		}
	}
	for i, s := range secrets {
		if len(s) < 32 {
			problems = append(problems, fmt.Errorf("master secret #%d is %d bytes; at least 32 are required (try: openssl rand -base64 48)", i+1, len(s)))
		}
	}
	return secrets, problems
}

// egressOptions are the rules for outbound requests to client-registered
// URLs. --dev also reaches loopback over plain http, so relying parties on
// the developer's machine work; production reaches public https only,
// plus the networks the operator allows.
func (c *config) egressOptions() egress.Options {
	if c.testEgress != nil {
		return *c.testEgress
	}
	o := egress.Options{Allowed: slices.Clone(c.EgressAllowed)}
	if c.Dev {
		o.AllowHTTP = true
		o.Allowed = append(o.Allowed, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	}
	return o
}
