package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/bulwark-auth/bulwark/keys/regtoken"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/server/egress"
	"github.com/bulwark-auth/bulwark/server/registration"
	"github.com/bulwark-auth/bulwark/storage"
)

// registrationConfig configures dynamic client registration (RFC 7591,
// RFC 7592). It is off unless --registration is given; even then a
// registrant needs an initial access token unless --registration-open.
type registrationConfig struct {
	Registration     bool
	RegistrationOpen bool
	RegistrationPol  registration.Policy
	// RegistrationTokenRetention is how long the janitor keeps an initial
	// access token after it expired or was revoked (0: for good).
	RegistrationTokenRetention time.Duration

	registrationScopesRaw, registrationGrantsRaw, registrationMethodsRaw string
}

// defaultRegistrationTokenRetention keeps an ended initial access token a
// week: long enough to see in the console and CLI what it registered
// before it ended (the audit trail keeps that for --audit-retention).
const defaultRegistrationTokenRetention = 7 * 24 * time.Hour

func registrationFlags(fs *pflag.FlagSet, c *registrationConfig) {
	def := registration.DefaultPolicy()
	fs.BoolVar(&c.Registration, "registration", envBool("BULWARK_REGISTRATION", false), "serve dynamic client registration (RFC 7591/7592) at /oauth2/register; registrants need an initial access token an admin issued")
	fs.BoolVar(&c.RegistrationOpen, "registration-open", envBool("BULWARK_REGISTRATION_OPEN", false), "also accept registrations WITHOUT an initial access token (anyone may register a client); needs --registration")
	fs.StringVar(&c.registrationScopesRaw, "registration-scopes", envOr("BULWARK_REGISTRATION_SCOPES", strings.Join(def.Scopes, " ")), "scopes a registered client may ask for (space-separated)")
	fs.StringVar(&c.registrationGrantsRaw, "registration-grant-types", envOr("BULWARK_REGISTRATION_GRANT_TYPES", strings.Join(def.GrantTypes, " ")), "grant types a registered client may ask for (space-separated)")
	fs.StringVar(&c.registrationMethodsRaw, "registration-auth-methods", envOr("BULWARK_REGISTRATION_AUTH_METHODS", strings.Join(def.AuthMethods, " ")), "token endpoint auth methods a registered client may ask for (space-separated)")
	fs.DurationVar(&c.RegistrationTokenRetention, "registration-token-retention", envDuration("BULWARK_REGISTRATION_TOKEN_RETENTION", defaultRegistrationTokenRetention), "how long an initial access token stays listed after it expired or was revoked; then the janitor deletes it (0 keeps them)")
}

// finishRegistration validates the registration settings; allowedScopes
// is --allowed-scopes (empty: any).
func (c *registrationConfig) finishRegistration(allowedScopes []string) []error {
	var problems []error
	def := registration.DefaultPolicy()
	pick := func(raw string, fallback []string) []string {
		if strings.TrimSpace(raw) == "" {
			return fallback
		}
		return splitList(raw)
	}
	c.RegistrationPol = registration.Policy{
		Open:        c.RegistrationOpen,
		Scopes:      pick(c.registrationScopesRaw, def.Scopes),
		GrantTypes:  pick(c.registrationGrantsRaw, def.GrantTypes),
		AuthMethods: pick(c.registrationMethodsRaw, def.AuthMethods),
	}
	if c.RegistrationTokenRetention < 0 {
		problems = append(problems, errors.New("--registration-token-retention must not be negative"))
	}
	if c.RegistrationOpen && !c.Registration {
		problems = append(problems, errors.New("--registration-open needs --registration"))
	}
	for _, g := range c.RegistrationPol.GrantTypes {
		if !slices.Contains(storage.SupportedGrantTypes, g) {
			problems = append(problems, fmt.Errorf("--registration-grant-types: %q is not a supported grant type", g))
		}
	}
	for _, m := range c.RegistrationPol.AuthMethods {
		if !slices.Contains(storage.SupportedAuthMethods, m) {
			problems = append(problems, fmt.Errorf("--registration-auth-methods: %q is not a supported method", m))
		}
	}
	if len(allowedScopes) > 0 {
		for _, s := range c.RegistrationPol.Scopes {
			if !slices.Contains(allowedScopes, s) {
				problems = append(problems, fmt.Errorf("--registration-scopes: %q is not among --allowed-scopes", s))
			}
		}
	}
	return problems
}

// registrationTokens is the hasher of initial and registration access
// tokens, peppered by every master secret (newest first).
func registrationTokens(secrets [][]byte) (*regtoken.Hasher, error) {
	peppers := make([][]byte, len(secrets))
	for i, s := range secrets {
		peppers[i] = deriveSecret(s, "bulwark registration token pepper")
	}
	return regtoken.NewHasher(peppers...)
}

// buildRegistration returns the mount of the registration endpoints, or a
// no-op when registration is off.
func buildRegistration(cfg config, svc *admin.Service, store storage.Store, tokens *regtoken.Hasher,
	eg *egress.Client, hasher fosite.Hasher, audit func(context.Context, storage.AuditEvent), log logrus.FieldLogger) (func(*mux.Router), error) {
	if !cfg.Registration {
		return func(*mux.Router) {}, nil
	}
	h, err := registration.New(registration.Config{
		Issuer: cfg.Issuer, Clients: svc, Store: store, Tokens: tokens, Egress: eg, SecretHasher: hasher,
		Policy: cfg.RegistrationPol, DefaultIDTokenAlg: cfg.IDTokenAlg, Now: cfg.now, Logger: log, Audit: audit,
	})
	if err != nil {
		return nil, err
	}
	return h.Register, nil
}
