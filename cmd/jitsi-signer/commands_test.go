package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
	"github.com/jitsi-signer/jitsi-signer/pkg/server"
)

// result is one in-process run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line in-process through run and exitCode, with
// in as standard input.
func runCLI(t *testing.T, in string, args ...string) result {
	t.Helper()
	old := stdin
	stdin = strings.NewReader(in)
	t.Cleanup(func() { stdin = old })
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	code := exitCode(err, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

var signingEnv = map[string]string{
	"JITSI_APP_ID": "my-app", "JITSI_API_KEY": testSecret, "JITSI_BASE_URL": "https://meet.example.com",
}

func TestServeFlagsWithAndWithoutCommand(t *testing.T) {
	setEnv(t, signingEnv)
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		inStderr string
	}{
		{"version", []string{"-version"}, 0, "jitsi-signer dev (unknown)\n", ""},
		{"serve -version", []string{"serve", "-version"}, 0, "jitsi-signer dev (unknown)\n", ""},
		{"check-config", []string{"-check-config"}, 0, "configuration OK: HS256-signed links", ""},
		{"serve -check-config", []string{"serve", "-check-config"}, 0, "configuration OK: HS256-signed links", ""},
		{"help", []string{"-help"}, 0, "", "JITSI_API_KEY_FILE"},
		{"serve -h", []string{"serve", "-h"}, 0, "", "hash-key"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command or argument "frobnicate"`},
		{"unknown flag", []string{"-frobnicate"}, 2, "", "flag provided but not defined: -frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			if r.code != tt.code || !strings.HasPrefix(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.inStderr) {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, stdout %q…, stderr with %q",
					tt.args, r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.inStderr)
			}
			if tt.code == 2 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("run(%q) usage error is not one line: %q", tt.args, r.stderr)
			}
		})
	}
}

func TestCommandHelp(t *testing.T) {
	setEnv(t, nil)
	for _, cmd := range []string{"sign", "verify", "hash-key", "healthcheck"} {
		r := runCLI(t, "", cmd, "-h")
		if r.code != 0 || !strings.Contains(r.stderr, "Usage: jitsi-signer "+cmd) || !strings.Contains(r.stderr, "Flags:") {
			t.Errorf("run(%s -h) = %d, stderr %q; want 0 and the command's usage", cmd, r.code, r.stderr)
		}
		r = runCLI(t, "", cmd, "-no-such-flag")
		if r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("run(%s -no-such-flag) = %d, stderr %q; want 2 and one line", cmd, r.code, r.stderr)
		}
	}
}

func TestSign(t *testing.T) {
	setEnv(t, signingEnv)
	r := runCLI(t, "", "sign", "-room", "Café 1", "-name", "Ann", "-role", "moderator", "-tenant", "Acme", "-ttl", "2h",
		"-email", "ann@example.com", "-id", "42")
	if r.code != 0 {
		t.Fatalf("sign = %d %s", r.code, r.stderr)
	}
	url := strings.TrimSpace(r.stdout)
	m, err := jitsi.ParseMeetingURL(url)
	if err != nil || m.Room != "caf%c3%a9%201" || m.Tenant != "acme" || m.Token == "" {
		t.Fatalf("sign printed %q, which leads to %+v, %v", url, m, err)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(m.Token, claims, func(*jwt.Token) (any, error) { return []byte(testSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("my-app"), jwt.WithAudience("jitsi"), jwt.WithSubject("acme")); err != nil {
		t.Fatalf("golang-jwt refuses the token: %v", err)
	}
	user := claims["context"].(map[string]any)["user"].(map[string]any)
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if claims["room"] != "caf%c3%a9%201" || user["affiliation"] != "owner" || user["email"] != "ann@example.com" || user["id"] != "42" ||
		exp.Sub(iat.Time) != 2*time.Hour {
		t.Errorf("claims = %v", claims)
	}
	if !strings.Contains(r.stderr, `"msg":"link issued"`) || strings.Contains(r.stderr, m.Token) || strings.Contains(r.stderr, testSecret) {
		t.Errorf("stderr = %s; want the audit line without the token or secret", r.stderr)
	}
	// The link verifies.
	if v := runCLI(t, "", "verify", url); v.code != 0 {
		t.Errorf("verify of a signed link = %d\n%s%s", v.code, v.stdout, v.stderr)
	}

	r = runCLI(t, "", "sign", "-json", "-room", "r", "-name", "Bob")
	var resp map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || resp["room"] != "r" || resp["signed"] != true || resp["token"] == nil {
		t.Errorf("sign -json = %d %q; want the endpoint's JSON", r.code, r.stdout)
	}
}

func TestSignRefuses(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no room", signingEnv, []string{"-name", "A"}, 2, "-room is required"},
		{"no name", signingEnv, []string{"-room", "r"}, 2, "-name is required"},
		{"fractional ttl", signingEnv, []string{"-room", "r", "-name", "A", "-ttl", "1500ms"}, 2, "whole number of seconds"},
		{"argument", signingEnv, []string{"-room", "r", "-name", "A", "extra"}, 2, `unexpected argument "extra"`},
		{"unjoinable room", signingEnv, []string{"-room", "Mario's", "-name", "A"}, 1, "room_not_joinable"},
		{"bad role", signingEnv, []string{"-room", "r", "-name", "A", "-role", "owner"}, 1, "invalid_role"},
		{"ttl above max", signingEnv, []string{"-room", "r", "-name", "A", "-ttl", "48h"}, 1, "ttl_out_of_range"},
		{"unsigned", map[string]string{}, []string{"-room", "r", "-name", "A"}, 1, "no signing secret"},
		{"bad configuration", map[string]string{"JITSI_API_KEY": "short"}, []string{"-room", "r", "-name", "A"}, 2, "JITSI_API_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			r := runCLI(t, "", append([]string{"sign"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
				t.Errorf("sign %q = %d, stdout %q, stderr %q; want %d and %q", tt.args, r.code, r.stdout, r.stderr, tt.code, tt.want)
			}
		})
	}
}

func TestHashKey(t *testing.T) {
	setEnv(t, nil)
	digest := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	tests := []struct {
		name, in string
		code     int
		out      string
	}{
		{"trailing newline", "bk_live_abc\n", 0, digest("bk_live_abc") + "\n"},
		{"CRLF", "bk_live_abc\r\n", 0, digest("bk_live_abc") + "\n"},
		{"no newline", "bk_live_abc", 0, digest("bk_live_abc") + "\n"},
		{"empty", "", 1, ""},
		{"only a newline", "\n", 1, ""},
		{"inner space", "bk live\n", 1, ""},
		{"too long", strings.Repeat("k", 600), 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.in, "hash-key")
			if r.code != tt.code || r.stdout != tt.out {
				t.Errorf("hash-key(%q) = %d %q, stderr %q; want %d %q", tt.in, r.code, r.stdout, r.stderr, tt.code, tt.out)
			}
		})
	}
	if r := runCLI(t, "", "hash-key", "my-key"); r.code != 2 {
		t.Errorf("hash-key my-key = %d; want 2: a key on the command line ends up in shell history", r.code)
	}

	r := runCLI(t, "", "hash-key", "-generate")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "api_key:") || !strings.HasPrefix(lines[1], "key_sha256:") {
		t.Fatalf("hash-key -generate = %d %q", r.code, r.stdout)
	}
	key := strings.TrimSpace(strings.TrimPrefix(lines[0], "api_key:"))
	sum := strings.TrimSpace(strings.TrimPrefix(lines[1], "key_sha256:"))
	raw, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 || sum != digest(key) {
		t.Errorf("generated key %q (%d bytes, %v) with digest %s; want 32 random bytes in base64url and their key's SHA-256", key, len(raw), err, sum)
	}
	if again := runCLI(t, key+"\n", "hash-key"); strings.TrimSpace(again.stdout) != sum {
		t.Errorf("hash-key of the generated key = %q; want %s", again.stdout, sum)
	}
}

func TestHealthcheck(t *testing.T) {
	health := server.NewHealth(true)
	srv := httptest.NewServer(server.NewAdmin(health, prometheus.NewRegistry()))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	_, port, _ := net.SplitHostPort(addr)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name  string
		addr  string
		ready bool
		code  int
		want  string
	}{
		{"ready", addr, true, 0, ""},
		{"wildcard host", ":" + port, true, 0, ""},
		{"unspecified IPv4", "0.0.0.0:" + port, true, 0, ""},
		{"shutting down", addr, false, 1, "answered 503"},
		{"nothing listening", closed, true, 1, "connection refused"},
		{"bad address", "localhost", true, 2, "SIGNER_ADMIN_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, map[string]string{"SIGNER_ADMIN_ADDR": tt.addr})
			health.SetReady(tt.ready)
			r := runCLI(t, "", "healthcheck", "-timeout", "5s")
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("healthcheck(%s) = %d %q; want %d and %q", tt.addr, r.code, r.stderr, tt.code, tt.want)
			}
		})
	}
}

func TestReadyzURL(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"127.0.0.1:9090", "http://127.0.0.1:9090/readyz"},
		{":9090", "http://127.0.0.1:9090/readyz"},
		{"0.0.0.0:9090", "http://127.0.0.1:9090/readyz"},
		{"[::]:9090", "http://127.0.0.1:9090/readyz"},
		{"10.0.0.5:9090", "http://10.0.0.5:9090/readyz"},
		{"[::1]:9090", "http://[::1]:9090/readyz"},
		{"localhost:9090", "http://localhost:9090/readyz"},
	}
	for _, tt := range tests {
		if got, err := readyzURL(tt.addr); got != tt.want || err != nil {
			t.Errorf("readyzURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
	if _, err := readyzURL("9090"); err == nil {
		t.Error(`readyzURL("9090") accepted an address without a port separator`)
	}
}

// craft makes a token with the given header and claims, signed with
// HMAC-SHA256 by hand, independently of the code under test.
func craft(header, claims map[string]any, secret string) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

func baseToken() (header, claims map[string]any) {
	now := time.Now().Unix()
	return map[string]any{"alg": "HS256", "typ": "JWT"}, map[string]any{
		"aud": "jitsi", "iss": "my-app", "sub": "acme", "room": "booking-123",
		"exp": now + 3600, "nbf": now - 30, "iat": now, "jti": "abc",
		"context": map[string]any{"user": map[string]any{"name": "Ann", "moderator": "true", "affiliation": "owner"}},
	}
}

// verdictLines maps each check's name to its line.
func verdictLines(out string) map[string]string {
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "ok" || f[0] == "FAIL") {
			lines[f[1]] = l
		}
	}
	return lines
}

func TestVerify(t *testing.T) {
	setEnv(t, signingEnv)
	now := time.Now().Unix()
	tests := []struct {
		name     string
		header   func(map[string]any)
		claims   func(map[string]any)
		secret   string
		urlRoom  string // "" uses the token's room under /acme/
		args     []string
		failing  string // the check that must fail; "" for a valid token
		inReason string
	}{
		{name: "valid"},
		{name: "valid bare token", urlRoom: "-"},
		{name: "wrong secret", secret: "another-secret-of-at-least-32-bytes!!", failing: "signature", inReason: "does not verify"},
		{name: "room mismatch", urlRoom: "acme/other-room", failing: "room", inReason: `the URL leads to room "other-room"`},
		{name: "room differs in case only", urlRoom: "acme/Booking-123"},
		{name: "room not in web-client form", claims: func(c map[string]any) { c["room"] = "café" }, urlRoom: "acme/café", failing: "room", inReason: `sign the room as "caf%c3%a9"`},
		{name: "wildcard room", claims: func(c map[string]any) { c["room"] = "*" }, urlRoom: "acme/anything"},
		{name: "expired", claims: func(c map[string]any) { c["exp"] = now - 3600 }, failing: "exp", inReason: "expired 1h0m"},
		{name: "nbf in the future", claims: func(c map[string]any) { c["nbf"] = now + 300 }, failing: "nbf", inReason: "in the future"},
		{name: "wrong iss", claims: func(c map[string]any) { c["iss"] = "other-app" }, failing: "iss", inReason: `"other-app" is not JITSI_APP_ID "my-app"`},
		{name: "wrong aud", claims: func(c map[string]any) { c["aud"] = "meet" }, failing: "aud", inReason: `"meet" is not JITSI_AUDIENCE "jitsi"`},
		{name: "aud array", claims: func(c map[string]any) { c["aud"] = []string{"jitsi"} }, failing: "aud", inReason: "is an array"},
		{name: "missing sub", claims: func(c map[string]any) { delete(c, "sub") }, failing: "sub", inReason: "sub claim is missing"},
		{name: "sub of another tenant", claims: func(c map[string]any) { c["sub"] = "globex" }, failing: "sub", inReason: `the URL's tenant is "acme"`},
		{name: "string exp", claims: func(c map[string]any) { c["exp"] = "1999999999" }, failing: "exp", inReason: "must be a JSON number"},
		{name: "string nbf", claims: func(c map[string]any) { c["nbf"] = "0" }, failing: "nbf", inReason: "must be a JSON number"},
		{name: "missing exp", claims: func(c map[string]any) { delete(c, "exp") }, failing: "exp", inReason: "missing"},
		{name: "missing room", claims: func(c map[string]any) { delete(c, "room") }, failing: "room", inReason: "missing"},
		{name: "typ missing", header: func(h map[string]any) { delete(h, "typ") }, failing: "header", inReason: "typ is missing"},
		{name: "typ lowercase", header: func(h map[string]any) { h["typ"] = "jwt" }, failing: "header", inReason: `typ is "jwt"`},
		{name: "alg other than configured", header: func(h map[string]any) { h["alg"] = "HS512" }, failing: "header", inReason: "configured for HS256"},
		{name: "moderator not granted", claims: func(c map[string]any) {
			c["context"] = map[string]any{"user": map[string]any{"name": "Ann", "moderator": "True"}}
		}, failing: "moderator", inReason: "does not read as true"},
		{name: "moderator wanted, member given", claims: func(c map[string]any) {
			c["context"] = map[string]any{"user": map[string]any{"name": "Ann", "moderator": "false", "affiliation": "member"}}
		}, args: []string{"-moderator"}, failing: "moderator", inReason: "member, not moderator"},
		{name: "top-level moderator only", claims: func(c map[string]any) {
			c["moderator"] = true
			c["context"] = map[string]any{"user": map[string]any{"name": "Ann"}}
		}, args: []string{"-moderator"}, failing: "moderator", inReason: "token_moderation"},
		{name: "boolean moderator", claims: func(c map[string]any) {
			c["context"] = map[string]any{"user": map[string]any{"name": "Ann", "moderator": true}}
		}, args: []string{"-moderator"}},
		{name: "unknown feature", claims: func(c map[string]any) {
			c["context"].(map[string]any)["features"] = map[string]any{"recording": "true", "teleport": true}
		}, failing: "features", inReason: "unknown teleport"},
		{name: "known features", claims: func(c map[string]any) {
			c["context"].(map[string]any)["features"] = map[string]any{"recording": "true", "livestreaming": false}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, claims := baseToken()
			if tt.header != nil {
				tt.header(header)
			}
			if tt.claims != nil {
				tt.claims(claims)
			}
			secret := testSecret
			if tt.secret != "" {
				secret = tt.secret
			}
			token := craft(header, claims, secret)
			input := "https://meet.example.com/acme/booking-123?jwt=" + token
			switch tt.urlRoom {
			case "":
			case "-":
				input = token
			default:
				input = "https://meet.example.com/" + tt.urlRoom + "#jwt=" + token
			}
			r := runCLI(t, "", append(append([]string{"verify"}, tt.args...), input)...)
			lines := verdictLines(r.stdout)
			if tt.failing == "" {
				if r.code != 0 || !strings.Contains(r.stdout, "VALID: ") || strings.Contains(r.stdout, "FAIL") {
					t.Errorf("verify(%s) = %d; want 0 and VALID\n%s%s", tt.name, r.code, r.stdout, r.stderr)
				}
			} else {
				line := lines[tt.failing]
				if r.code != 1 || !strings.HasPrefix(line, "FAIL") || !strings.Contains(line, tt.inReason) || !strings.Contains(r.stdout, "NOT VALID") {
					t.Errorf("verify(%s) = %d, %s line %q; want 1 and FAIL with %q\n%s", tt.name, r.code, tt.failing, line, tt.inReason, r.stdout)
				}
				for name, l := range lines {
					if name != tt.failing && strings.HasPrefix(l, "FAIL") {
						t.Errorf("verify(%s): %q fails too; want only %s to fail", tt.name, l, tt.failing)
					}
				}
			}
			sig := token[strings.LastIndexByte(token, '.')+1:]
			if out := r.stdout + r.stderr; strings.Contains(out, testSecret) || strings.Contains(out, sig) {
				t.Errorf("verify(%s) printed the secret or the signature:\n%s", tt.name, out)
			}
		})
	}
}

func TestVerifyInputs(t *testing.T) {
	setEnv(t, signingEnv)
	header, claims := baseToken()
	token := craft(header, claims, testSecret)
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"token on stdin", token + "\n", nil, 0, "VALID"},
		{"URL on stdin with dash", "https://meet.example.com/acme/booking-123?jwt=" + token, []string{"-"}, 0, "VALID"},
		{"nothing", "", nil, 2, "no token"},
		{"not a token", "", []string{"hello"}, 1, "has 1 parts"},
		{"bad base64", "", []string{"a.b.c"}, 1, "not base64url JSON"},
		{"URL without token", "", []string{"https://meet.example.com/acme/r"}, 1, "carries no token"},
		{"two arguments", "", []string{token, token}, 2, "one token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, append([]string{"verify"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.want) {
				t.Errorf("verify %s = %d\n%s%s; want %d and %q", tt.name, r.code, r.stdout, r.stderr, tt.code, tt.want)
			}
		})
	}

	setEnv(t, map[string]string{})
	r := runCLI(t, "", "verify", token)
	if lines := verdictLines(r.stdout); r.code != 1 || !strings.Contains(lines["signature"], "no key") {
		t.Errorf("verify without a configured key = %d\n%s; want the signature unchecked and FAIL", r.code, r.stdout)
	}
}

func TestVerifyRSA(t *testing.T) {
	setEnv(t, map[string]string{"JITSI_APP_ID": "", "JITSI_AUDIENCE": "jitsi", "JITSI_SUBJECT": "meet.jitsi"})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writePEM := func(name string, k *rsa.PublicKey) string {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	right, wrong := writePEM("right.pem", &key.PublicKey), writePEM("wrong.pem", &other.PublicKey)
	jwks := filepath.Join(dir, "jwks.json")
	n := base64.RawURLEncoding.EncodeToString(key.PublicKey.N.Bytes())
	doc := `{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"` + n + `","e":"AQAB"}]}`
	if err := os.WriteFile(jwks, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}

	now := time.Now().Unix()
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "k1"})
	c, _ := json.Marshal(map[string]any{"aud": "jitsi", "iss": "chat", "sub": "meet.jitsi", "room": "r", "exp": now + 60, "nbf": now - 60})
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	token := signing + "." + enc.EncodeToString(sig)

	// A key server on loopback, laid out as Prosody's asap_key_server.
	pemData, _ := os.ReadFile(right)
	sum := sha256.Sum256([]byte("k1"))
	keyServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/keys/" + hex.EncodeToString(sum[:]) + ".pem":
			_, _ = w.Write(pemData)
		case "/jwks.json":
			_, _ = w.Write([]byte(doc))
		default:
			http.NotFound(w, r)
		}
	}))
	defer keyServer.Close()

	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"PEM public key", []string{"-key-file", right}, true},
		{"JWKS by kid", []string{"-jwks", jwks}, true},
		{"JWKS from a URL", []string{"-jwks", keyServer.URL + "/jwks.json"}, true},
		{"key server as Prosody uses it", []string{"-key-server", keyServer.URL + "/keys"}, true},
		{"key server without the key", []string{"-key-server", keyServer.URL + "/elsewhere"}, false},
		{"another key", []string{"-key-file", wrong}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", append(append([]string{"verify"}, tt.args...), token)...)
			line := verdictLines(r.stdout)["signature"]
			if strings.HasPrefix(line, "ok") != tt.ok {
				t.Errorf("verify %v: signature line %q; want ok = %v\n%s%s", tt.args, line, tt.ok, r.stdout, r.stderr)
			}
		})
	}
	if r := runCLI(t, "", "verify", "-key-file", right, "-jwks", jwks, token); r.code != 2 {
		t.Errorf("verify with -key-file and -jwks = %d; want 2", r.code)
	}
}
