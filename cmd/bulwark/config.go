package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/server/tlsconf"
)

// config is the serve command's configuration. Every field can come from a
// flag or a BULWARK_* environment variable (flags win); secrets may also
// come from files (BULWARK_SECRET_FILE).
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
	AuditRetention      time.Duration
	APIKeyRotation      time.Duration
	JanitorInterval     time.Duration
	SecretOverlap       time.Duration
	AllowedScopes       []string

	allowedScopesRaw string
	APIKeyGrace      time.Duration

	// now replaces the clock (tests only; no flag sets it).
	now func() time.Time

	trustedProxiesRaw   string
	rateLimitsRaw       string
	clientRateLimitsRaw string
	clientOverridesRaw  string
}

// Default rate limits per source IP and per client, as "class=rate:burst"
// (rate per second). They hold per replica.
const (
	defaultRateLimits       = "token=20:40,introspect=100:200,revoke=20:40,par=10:20,login=1:10,admin=20:40"
	defaultClientRateLimits = "token=50:100,introspect=200:400,revoke=50:100,par=20:40"
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

// envOr returns the environment variable's value, or def.
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

func envBool(name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

// configFlags registers the serve flags on fs, with environment defaults.
func configFlags(fs *flag.FlagSet, c *config) (secretFile *string, secretEnv *string, algs *string) {
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
	secretEnv = fs.String("secret", "", "master secret(s), newest first, comma-separated (prefer BULWARK_SECRET or BULWARK_SECRET_FILE)")
	secretFile = fs.String("secret-file", envOr("BULWARK_SECRET_FILE", ""), "file holding the master secret(s), one per line, newest first")
	algs = fs.String("signing-algs", envOr("BULWARK_SIGNING_ALGS", "ES256,RS256"), "signing algorithms with active keys")
	return
}

// finish resolves secrets and lists, then validates everything in one pass.
func (c *config) finish(secretFlag, secretFile, algs string) error {
	secrets, problems := loadSecrets(secretFlag, secretFile)
	c.Secrets = secrets
	for _, a := range strings.Split(algs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.SigningAlgs = append(c.SigningAlgs, a)
		}
	}
	if !c.Dev {
		if len(c.Secrets) == 0 {
			problems = append(problems, errors.New("BULWARK_SECRET (or --secret-file) is required outside --dev"))
		}
		if c.DatabaseURL == "" {
			problems = append(problems, errors.New("DATABASE_URL is required outside --dev"))
		}
		if c.Issuer == "" {
			problems = append(problems, errors.New("BULWARK_ISSUER is required outside --dev"))
		}
	}
	if c.Issuer != "" {
		c.Issuer = strings.TrimRight(c.Issuer, "/")
		if err := tlsconf.CheckIssuer(c.Issuer, c.Dev); err != nil {
			problems = append(problems, err)
		}
	}
	for _, p := range strings.Split(c.trustedProxiesRaw, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			if a, aerr := netip.ParseAddr(p); aerr == nil {
				pfx = netip.PrefixFrom(a, a.BitLen())
			} else {
				problems = append(problems, fmt.Errorf("trusted proxy %q: use an address or CIDR prefix", p))
				continue
			}
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx)
	}
	c.AllowedScopes = strings.Fields(c.allowedScopesRaw)
	var err error
	if c.RateLimits, err = parseLimits(c.rateLimitsRaw); err != nil {
		problems = append(problems, fmt.Errorf("--rate-limits: %w", err))
	}
	if c.ClientRateLimits, err = parseLimits(c.clientRateLimitsRaw); err != nil {
		problems = append(problems, fmt.Errorf("--client-rate-limits: %w", err))
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
	return errors.Join(problems...)
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
