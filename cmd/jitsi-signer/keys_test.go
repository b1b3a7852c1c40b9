package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jitsi-signer/jitsi-signer/pkg/keys/keystest"
)

var rsaKeys = keystest.Keys

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func privatePEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// tokenFrom asks the running service for a link and returns its token.
func tokenFrom(t *testing.T, r *running) string {
	t.Helper()
	resp, body := post(t, r.api, `{"room":"r","user":{"name":"Ann"}}`)
	var link struct{ Token string }
	if resp.StatusCode != 200 || json.Unmarshal(body, &link) != nil || link.Token == "" {
		t.Fatalf("POST /v1/links = %d %s", resp.StatusCode, body)
	}
	return link.Token
}

// verifyAsProsody fetches <keyServer>/<hex(sha256(kid))>.pem for the
// token's kid and verifies the token with it, and returns the kid.
func verifyAsProsody(t *testing.T, keyServer, token string) string {
	t.Helper()
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var h struct{ Kid string }
	_ = json.Unmarshal(header, &h)
	sum := sha256.Sum256([]byte(h.Kid))
	resp, err := http.Get(keyServer + "/" + hex.EncodeToString(sum[:]) + ".pem")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET key of kid %q = %d %s", h.Kid, resp.StatusCode, body)
	}
	pub, err := jwt.ParseRSAPublicKeyFromPEM(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return pub, nil }, jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer("app"), jwt.WithAudience("jitsi")); err != nil {
		t.Fatalf("token does not verify with the served key: %v", err)
	}
	return h.Kid
}

// waitForLog waits until the service has logged msg n times.
func waitForLog(t *testing.T, r *running, msg string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(r.logs.String(), `"msg":"`+msg+`"`) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", msg, r.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServeRS256RotatesOnSIGHUP(t *testing.T) {
	k := rsaKeys()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "k1.pem"), privatePEM(k[0]))
	r := start(t, map[string]string{
		"JITSI_SIGNING_ALG": "RS256", "JITSI_KEYS_DIR": dir, "JITSI_APP_ID": "app",
		"JITSI_BASE_URL": "https://meet.example.com", "JITSI_KEYS_POLL_INTERVAL": "10m",
	})
	if kid := verifyAsProsody(t, r.api+"/keys", tokenFrom(t, r)); kid != "k1" {
		t.Fatalf("kid = %q; want k1", kid)
	}

	// Add k2 and promote it, then SIGHUP.
	writeFile(t, filepath.Join(dir, "k2.pem"), privatePEM(k[1]))
	writeFile(t, filepath.Join(dir, "active"), []byte("k2\n"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, r, "signing keys reloaded", 1)
	if kid := verifyAsProsody(t, r.api+"/keys", tokenFrom(t, r)); kid != "k2" {
		t.Fatalf("kid after rotation = %q; want k2", kid)
	}

	// A broken key keeps k2 signing, and the service ready.
	writeFile(t, filepath.Join(dir, "k3.pem"), []byte("not a key"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, r, "signing keys not reloaded; the keys in use stay", 1)
	if !strings.Contains(r.logs.String(), filepath.Join(dir, "k3.pem")+" holds no PEM block") {
		t.Errorf("the failure does not name the file:\n%s", r.logs)
	}
	if kid := verifyAsProsody(t, r.api+"/keys", tokenFrom(t, r)); kid != "k2" {
		t.Fatalf("kid after a failed reload = %q; want k2", kid)
	}
	if code := get(t, r.admin+"/readyz"); code != 200 {
		t.Errorf("/readyz after a failed reload = %d; want 200", code)
	}
	resp, err := http.Get(r.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`jitsi_signer_key_reloads_total{outcome="failure"} 1`, `jitsi_signer_key_reloads_total{outcome="success"} 1`,
		`jitsi_signer_signing_key_info{alg="RS256",kid="k2"} 1`, `jitsi_signer_published_keys 2`, `jitsi_signer_tokens_signed_total{kid="k1"} 1`,
		`jitsi_signer_tokens_signed_total{kid="k2"} 2`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(r.logs.String(), "PRIVATE KEY") {
		t.Error("the log holds key material")
	}
}

func TestServeKeysOnTheirOwnListener(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "k1.pem"), privatePEM(rsaKeys()[0]))
	r := start(t, map[string]string{
		"JITSI_SIGNING_ALG": "RS256", "JITSI_KEYS_DIR": dir, "JITSI_APP_ID": "app", "SIGNER_KEYS_ADDR": "127.0.0.1:0",
	})
	if r.keys == r.api {
		t.Fatal("the keys are served on the API listener")
	}
	verifyAsProsody(t, r.keys+"/keys", tokenFrom(t, r))
	if code := get(t, r.api+"/.well-known/jwks.json"); code != 404 {
		t.Errorf("API listener serves the JWKS: %d", code)
	}
	if code := get(t, r.keys+"/.well-known/jwks.json"); code != 200 {
		t.Errorf("keys listener JWKS = %d", code)
	}
}

func TestBadKeyFolderNamesEveryFile(t *testing.T) {
	dir := t.TempDir()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "a.pem"), []byte("junk"))
	writeFile(t, filepath.Join(dir, "b.pem"), privatePEM(weak))
	setEnv(t, map[string]string{"JITSI_SIGNING_ALG": "RS256", "JITSI_KEYS_DIR": dir, "JITSI_TOKEN_TTL": "forever"})
	var stderr bytes.Buffer
	err = run(context.Background(), nil, io.Discard, &stderr)
	var ce *configError
	if !errors.As(err, &ce) || exitCode(err, &stderr) != 2 {
		t.Fatalf("run() = %v; want a configuration error", err)
	}
	for _, want := range []string{
		"JITSI_APP_ID is required when JITSI_SIGNING_ALG is RS256",
		`JITSI_TOKEN_TTL "forever"`,
		"JITSI_KEYS_DIR " + filepath.Join(dir, "a.pem") + " holds no PEM block",
		"JITSI_KEYS_DIR " + filepath.Join(dir, "b.pem") + " holds a 1024-bit RSA key; at least 2048 bits are required",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestCheckConfigJaaS(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "4f4910.pem"), privatePEM(rsaKeys()[0]))
	const app = "vpaas-magic-cookie-1fc542a3e4414a44b2611668195e2bfe"
	setEnv(t, map[string]string{"JITSI_MODE": "jaas", "JITSI_SIGNING_ALG": "RS256", "JITSI_KEYS_DIR": dir, "JITSI_APP_ID": app})
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-check-config"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, `8x8 JaaS RS256-signed links`) || !strings.Contains(got, `(active "`+app+`/4f4910")`) ||
		!strings.Contains(got, "to https://8x8.vc") {
		t.Errorf("-check-config printed %q", got)
	}
}
