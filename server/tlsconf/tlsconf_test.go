package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
)

// writeCert writes a fresh self-signed P-256 certificate for 127.0.0.1
// with the given serial and returns its files.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "bulwark-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), serial)
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), serial)
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// writeFile writes b and gives it an mtime derived from gen, so successive
// generations differ even on filesystems with coarse timestamps.
func writeFile(t *testing.T, path string, b []byte, gen int64) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(gen) * time.Minute)
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}

func startServer(t *testing.T, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	// Not StartTLS: it would add httptest's own certificate, which Go
	// prefers over GetCertificate for clients that send no SNI.
	srv.Listener = tls.NewListener(srv.Listener, cfg)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}

func TestProtocolPolicy(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := writeCert(t, t.TempDir(), 1)
	log, _ := test.NewNullLogger()
	cfg, _, err := Config(certFile, keyFile, log)
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, cfg).Listener.Addr().String()
	cases := []struct {
		name        string
		client      *tls.Config
		ok          bool
		wantVersion uint16
	}{
		{"case=default-client-gets-tls13", &tls.Config{}, true, tls.VersionTLS13},
		{"case=tls12-aead", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, true, tls.VersionTLS12},
		{"case=tls12-chacha", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, true, tls.VersionTLS12},
		{"case=tls11-refused", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false, 0},
		{"case=tls12-cbc-refused", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}, false, 0},
		{"case=tls12-p384-only-refused", &tls.Config{MaxVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.CurveP384}}, false, 0},
		{"case=tls13-p256", &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}}, true, tls.VersionTLS13},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.client.InsecureSkipVerify = true //nolint:gosec // self-signed test certificate
			st, err := handshake(addr, tc.client)
			if tc.ok != (err == nil) {
				t.Fatalf("handshake err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && st.Version != tc.wantVersion {
				t.Fatalf("negotiated %s, want %s", tls.VersionName(st.Version), tls.VersionName(tc.wantVersion))
			}
		})
	}
}

func TestCertificateReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, first := writeCert(t, dir, 1)
	log, hook := test.NewNullLogger()
	cfg, r, err := Config(certFile, keyFile, log)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	addr := startServer(t, cfg).Listener.Addr().String()
	client := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // self-signed test certificate
	serial := func() int64 {
		t.Helper()
		st, err := handshake(addr, client)
		if err != nil {
			t.Fatal(err)
		}
		return st.PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != first.SerialNumber.Int64() {
		t.Fatalf("serving serial %d", s)
	}

	_, _, second := writeCert(t, dir, 2)
	if s := serial(); s != 1 {
		t.Fatalf("reloaded before the check interval: serial %d", s)
	}
	advance(DefaultCheckEvery)
	if s := serial(); s != second.SerialNumber.Int64() {
		t.Fatalf("after change: serial %d, want 2", s)
	}

	// A broken replacement keeps the good certificate in service.
	writeFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"), 3)
	advance(DefaultCheckEvery)
	if s := serial(); s != 2 {
		t.Fatalf("after bad file: serial %d, want 2 kept", s)
	}
	if e := hook.LastEntry(); e == nil || !strings.Contains(e.Message, "rejected") {
		t.Fatalf("bad certificate not logged: %+v", e)
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload of an unchanged (bad) pair should be a no-op, got %v", err)
	}
	// Fixing the files is picked up by a forced Reload.
	writeCert(t, dir, 4)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if s := serial(); s != 4 {
		t.Fatalf("after Reload: serial %d, want 4", s)
	}
}

func TestConfigFailsOnMissingFiles(t *testing.T) {
	t.Parallel()
	log, _ := test.NewNullLogger()
	if _, _, err := Config("/nonexistent/tls.crt", "/nonexistent/tls.key", log); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want os.ErrNotExist", err)
	}
}

func TestCheckIssuer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		issuer string
		dev    bool
		want   error
	}{
		{"https://auth.example.com", false, nil},
		{"https://auth.example.com/tenant", false, nil},
		{"http://localhost:8080", false, nil},
		{"http://127.0.0.1:8080", false, nil},
		{"http://[::1]:8080", false, nil},
		{"http://auth.example.com", false, ErrInsecureIssuer},
		{"http://10.0.0.5", false, ErrInsecureIssuer},
		{"http://localhost.evil.com", false, ErrInsecureIssuer},
		{"http://auth.example.com", true, nil},
		{"https://auth.example.com?x=1", false, ErrInvalidIssuer},
		{"https://auth.example.com#f", false, ErrInvalidIssuer},
		{"https://user:pw@auth.example.com", false, ErrInvalidIssuer},
		{"auth.example.com", false, ErrInvalidIssuer},
		{"ftp://auth.example.com", true, ErrInvalidIssuer},
		{"", false, ErrInvalidIssuer},
	}
	for _, tc := range cases {
		err := CheckIssuer(tc.issuer, tc.dev)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("case=%q dev=%v: err %v, want %v", tc.issuer, tc.dev, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("case=%q: error repeats the password", tc.issuer)
		}
	}
	if err := CheckIssuer("http://auth.example.com", false); err == nil || !strings.Contains(err.Error(), "https is required") {
		t.Fatalf("message not clear: %v", err)
	}
}
