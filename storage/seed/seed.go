// Package seed applies a declarative file of clients and users to a store,
// idempotently. It is how operators keep clients in Git and how tests set up
// a server. Secrets in the file are hashed on import; only Argon2id hashes
// reach the store.
package seed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"gopkg.in/yaml.v3"
)

// File is the seed document. Field names follow RFC 7591 for clients.
type File struct {
	Clients []Client `yaml:"clients" json:"clients"`
	Users   []User   `yaml:"users" json:"users"`
}

// Client is one client declaration: storage.ClientSpec, the client shape
// the admin API and console share (so defaults and validation are the
// same), plus the secret to create it with. Lifespans are Go durations
// ("15m", "720h").
type Client struct {
	storage.ClientSpec `yaml:",inline"`
	ClientSecret       string `yaml:"client_secret" json:"client_secret"`
	// JWKSYAML carries jwks through YAML, which go-jose cannot decode
	// directly; JSON decodes into ClientSpec.JWKS.
	JWKSYAML map[string]any `yaml:"jwks" json:"-"`
}

// User is one local user declaration.
type User struct {
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"password"`
	// PasswordFile names a file holding the password instead (Compose or
	// Kubernetes secrets); relative to the seed file. See LoadPasswordFiles.
	PasswordFile string   `yaml:"password_file" json:"password_file"`
	Email        string   `yaml:"email" json:"email"`
	AdminScopes  []string `yaml:"admin_scopes" json:"admin_scopes"`
}

// LoadPasswordFiles reads the password of every user that names a
// password_file (relative paths from dir), dropping one trailing newline.
// A user with both password and password_file is an error.
func (f *File) LoadPasswordFiles(dir string) error {
	var problems []error
	for i := range f.Users {
		u := &f.Users[i]
		if u.PasswordFile == "" {
			continue
		}
		if u.Password != "" {
			problems = append(problems, fmt.Errorf("users[%d] (%s): give password or password_file, not both", i, u.Username))
			continue
		}
		path := u.PasswordFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		b, err := os.ReadFile(path) // #nosec G304 -- the operator's seed file names the password file
		if err != nil {
			problems = append(problems, fmt.Errorf("users[%d] (%s): password_file: %w", i, u.Username, err))
			continue
		}
		u.Password = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		u.PasswordFile = ""
	}
	if len(problems) > 0 {
		return fmt.Errorf("seed: %w", errors.Join(problems...))
	}
	return nil
}

// Duration is a lifespan in Go duration syntax; it is storage.Duration.
type Duration = storage.Duration

// Parse reads a seed document in YAML or JSON (JSON is detected by a leading
// '{'). Unknown fields are errors, so a typo is never silently ignored.
func Parse(r io.Reader) (*File, error) {
	raw, err := io.ReadAll(io.LimitReader(r, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("seed: read: %w", err)
	}
	var f File
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("seed: parse JSON: %w", err)
		}
		return &f, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("seed: parse YAML: %w", err)
	}
	for i := range f.Clients {
		if f.Clients[i].JWKSYAML != nil {
			b, err := json.Marshal(f.Clients[i].JWKSYAML)
			if err != nil {
				return nil, fmt.Errorf("seed: clients[%d].jwks: %w", i, err)
			}
			var ks jose.JSONWebKeySet
			if err := json.Unmarshal(b, &ks); err != nil {
				return nil, fmt.Errorf("seed: clients[%d].jwks: %w", i, err)
			}
			f.Clients[i].JWKS = &ks
		}
	}
	return &f, nil
}

// Store is what Apply needs of a backend.
type Store interface {
	storage.ClientStore
	storage.UserStore
}

// Applier applies seed files.
type Applier struct {
	Store         Store
	Hasher        fosite.Hasher
	AllowedScopes []string
	Now           func() time.Time
}

// Result counts what Apply changed.
type Result struct {
	ClientsCreated, ClientsUpdated, UsersCreated, UsersUpdated int
}

// Apply creates or updates every client and user in f. It validates the
// whole file first and changes nothing if any entry is invalid.
func (a *Applier) Apply(ctx context.Context, f *File) (Result, error) {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	clients := make([]*storage.Client, len(f.Clients))
	var problems []error
	for i, sc := range f.Clients {
		c, err := sc.toClient()
		if err == nil {
			err = c.Validate(a.AllowedScopes)
		}
		if err == nil && c.TokenEndpointAuthMethod != storage.AuthMethodNone && c.TokenEndpointAuthMethod != storage.AuthMethodPrivateKeyJWT && sc.ClientSecret == "" {
			err = errors.New("client_secret is required for this token_endpoint_auth_method")
		}
		if err == nil && c.TokenEndpointAuthMethod == storage.AuthMethodNone && sc.ClientSecret != "" {
			err = errors.New("a public client (token_endpoint_auth_method none) must not have a client_secret")
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("clients[%d] (%s): %w", i, sc.ID, err))
		}
		clients[i] = c
	}
	for i, u := range f.Users {
		if strings.TrimSpace(u.Username) == "" || u.Password == "" {
			problems = append(problems, fmt.Errorf("users[%d]: username and password are required", i))
		}
	}
	if len(problems) > 0 {
		return Result{}, fmt.Errorf("seed: %w", errors.Join(problems...))
	}
	var res Result
	for i, c := range clients {
		created, err := a.applyClient(ctx, c, f.Clients[i].ClientSecret, now())
		if err != nil {
			return res, err
		}
		if created {
			res.ClientsCreated++
		} else {
			res.ClientsUpdated++
		}
	}
	for _, u := range f.Users {
		created, err := a.applyUser(ctx, u, now())
		if err != nil {
			return res, err
		}
		if created {
			res.UsersCreated++
		} else {
			res.UsersUpdated++
		}
	}
	return res, nil
}

// toClient applies the declaration the way the admin API does
// (storage.ClientSpec.ApplyTo: the same defaults).
func (sc Client) toClient() (*storage.Client, error) {
	c := &storage.Client{}
	sc.ApplyTo(c)
	return c, nil
}

func (a *Applier) applyClient(ctx context.Context, c *storage.Client, secret string, now time.Time) (bool, error) {
	existing, err := a.Store.ClientByID(ctx, c.ID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if secret != "" {
			h, err := a.Hasher.Hash(ctx, []byte(secret))
			if err != nil {
				return false, fmt.Errorf("seed: hash secret of %s: %w", c.ID, err)
			}
			c.SecretHash = string(h)
		}
		c.CreatedAt, c.UpdatedAt = now, now
		if err := a.Store.CreateClient(ctx, c); err != nil {
			return false, fmt.Errorf("seed: create client %s: %w", c.ID, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("seed: look up client %s: %w", c.ID, err)
	}
	// The declared secret is used only to create the client (or when it
	// had none). Afterwards the stored secret wins, so a secret rotated
	// through the admin API after an incident is not silently put back to
	// the old one at the next restart.
	c.SecretHash = existing.SecretHash
	switch {
	case secret == "":
		c.SecretHash = ""
	case existing.SecretHash == "":
		h, err := a.Hasher.Hash(ctx, []byte(secret))
		if err != nil {
			return false, fmt.Errorf("seed: hash secret of %s: %w", c.ID, err)
		}
		c.SecretHash = string(h)
	}
	c.RotatedSecrets = existing.RotatedSecrets
	c.Owner = existing.Owner
	c.Disabled = existing.Disabled
	c.CreatedAt, c.UpdatedAt = existing.CreatedAt, now
	if err := a.Store.UpdateClient(ctx, c, existing.Version); err != nil {
		return false, fmt.Errorf("seed: update client %s: %w", c.ID, err)
	}
	return false, nil
}

func (a *Applier) applyUser(ctx context.Context, su User, now time.Time) (bool, error) {
	existing, err := a.Store.UserByUsername(ctx, su.Username)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		h, err := a.Hasher.Hash(ctx, []byte(su.Password))
		if err != nil {
			return false, fmt.Errorf("seed: hash password of %s: %w", su.Username, err)
		}
		u := &storage.User{ID: NewID(), Username: su.Username, Email: su.Email, PasswordHash: string(h), AdminScopes: su.AdminScopes, CreatedAt: now, UpdatedAt: now}
		if err := a.Store.CreateUser(ctx, u); err != nil {
			return false, fmt.Errorf("seed: create user %s: %w", su.Username, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("seed: look up user %s: %w", su.Username, err)
	}
	u := *existing
	u.Email = su.Email
	u.AdminScopes = su.AdminScopes
	u.UpdatedAt = now
	// Like client secrets, the declared password only creates the user: a
	// password reset after an incident survives restarts.
	if err := a.Store.UpdateUser(ctx, &u, existing.Version); err != nil {
		return false, fmt.Errorf("seed: update user %s: %w", su.Username, err)
	}
	return false, nil
}

// NewID returns a random 128-bit identifier in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
