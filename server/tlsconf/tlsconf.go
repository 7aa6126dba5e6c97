package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// CipherSuites are the TLS 1.2 suites offered: ECDHE only (forward
// secrecy), AEAD only (no CBC, no SHA-1 MACs). TLS 1.3 suites are not
// configurable in Go and are all AEAD.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, // required by HTTP/2 (RFC 9113 §9.2.2)
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Curves are the key exchanges offered, best first: the hybrid
// post-quantum X25519MLKEM768 (TLS 1.3 only; clients without it fall back),
// then X25519 and P-256.
var Curves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}

// DefaultCheckEvery is how often, at most, the certificate files are
// stat'ed for changes during handshakes.
const DefaultCheckEvery = 5 * time.Second

// Config loads the certificate pair and returns a server tls.Config whose
// GetCertificate serves it and picks up replacements on disk, plus the
// Reloader behind it (call Reload on SIGHUP to force a check). It fails if
// the initial pair cannot be loaded.
func Config(certFile, keyFile string, log logrus.FieldLogger) (*tls.Config, *Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now, checkEvery: DefaultCheckEvery}
	if err := r.load(); err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     CipherSuites,
		CurvePreferences: Curves,
		GetCertificate:   r.GetCertificate,
		NextProtos:       []string{"h2", "http/1.1"},
	}
	return cfg, r, nil
}

// Reloader holds the current certificate and swaps it when the files
// change. A bad new pair (half-written, mismatched) is logged and the old
// certificate stays in service; it is retried when either file changes
// again.
type Reloader struct {
	certFile, keyFile string
	log               logrus.FieldLogger
	now               func() time.Time
	checkEvery        time.Duration

	mu        sync.Mutex
	cert      *tls.Certificate
	certStamp fileStamp
	keyStamp  fileStamp
	lastCheck time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tlsconf: stat %s: %w", path, err)
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.lastCheck) >= r.checkEvery {
		r.lastCheck = now
		// A failed check is logged inside and the current certificate
		// keeps serving; the handshake must not fail for it.
		_ = r.maybeReloadLocked()
	}
	return r.cert, nil
}

// Reload checks the files now and swaps the certificate if they changed and
// load cleanly. It returns the load error, if any; the old certificate stays.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastCheck = r.now()
	return r.maybeReloadLocked()
}

func (r *Reloader) maybeReloadLocked() error {
	cs, err := stamp(r.certFile)
	if err != nil {
		r.log.WithError(err).Warn("tls certificate check failed; keeping the current certificate")
		return err
	}
	ks, err := stamp(r.keyFile)
	if err != nil {
		r.log.WithError(err).Warn("tls key check failed; keeping the current certificate")
		return err
	}
	if cs == r.certStamp && ks == r.keyStamp {
		return nil
	}
	// Remember what we tried, so a bad pair is not re-parsed on every
	// handshake; the next write to either file triggers another attempt.
	r.certStamp, r.keyStamp = cs, ks
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		err = fmt.Errorf("tlsconf: load certificate pair: %w", err)
		r.log.WithError(err).Error("new tls certificate rejected; keeping the current one")
		return err
	}
	r.cert = &cert
	r.logLoaded()
	return nil
}

func (r *Reloader) load() error {
	cs, err := stamp(r.certFile)
	if err != nil {
		return err
	}
	ks, err := stamp(r.keyFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tlsconf: load certificate pair: %w", err)
	}
	r.cert, r.certStamp, r.keyStamp, r.lastCheck = &cert, cs, ks, r.now()
	r.logLoaded()
	return nil
}

func (r *Reloader) logLoaded() {
	f := logrus.Fields{"cert_file": r.certFile}
	if leaf := r.cert.Leaf; leaf != nil {
		f["not_after"] = leaf.NotAfter.UTC().Format(time.RFC3339)
		f["subject"] = leaf.Subject.String()
	}
	r.log.WithFields(f).Info("tls certificate loaded")
}

// Errors returned by CheckIssuer; test with errors.Is.
var (
	ErrInvalidIssuer  = errors.New("invalid issuer URL")
	ErrInsecureIssuer = errors.New("insecure issuer URL")
)

// CheckIssuer validates the issuer URL (OpenID Connect Discovery §3,
// RFC 8414 §2): absolute, no query or fragment, https. Plain http is
// accepted for loopback hosts (localhost, 127.0.0.1, [::1]) always, and for
// any host when dev is true; otherwise tokens would name an issuer whose
// JWKS anyone on the network path could replace.
func CheckIssuer(issuer string, dev bool) error {
	u, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("%w: %q does not parse", ErrInvalidIssuer, issuer)
	}
	switch {
	case u.User != nil:
		// Checked first so no later message repeats a password.
		return fmt.Errorf("%w: the issuer must not contain user information", ErrInvalidIssuer)
	case !u.IsAbs() || u.Host == "":
		return fmt.Errorf("%w: %q must be an absolute URL such as https://auth.example.com", ErrInvalidIssuer, issuer)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("%w: %q must not have a query or fragment", ErrInvalidIssuer, issuer)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		if dev || isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%w: %q uses http; https is required (http is allowed only for localhost, 127.0.0.1 and [::1], or with --dev)", ErrInsecureIssuer, issuer)
	default:
		return fmt.Errorf("%w: %q must use https", ErrInvalidIssuer, issuer)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))
}
