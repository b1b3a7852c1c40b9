package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

const goodSecret = "0123456789abcdef0123456789abcdef-secret"

// allVars lists every variable Load reads, so each test starts clean.
var allVars = Variables()

func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, k := range allVars {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

func TestLoadDefaults(t *testing.T) {
	setEnv(t, nil)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		BaseURL: "https://meet.jit.si", SigningAlg: "HS256", Audience: "jitsi", Subject: "meet.jit.si",
		TokenTTL: 24 * time.Hour, TokenMaxTTL: 24 * time.Hour, ClockSkew: 30 * time.Second, KeysPollInterval: 5 * time.Second,
		ModeratorForm: jitsi.ModeratorString, TokenPlacement: jitsi.TokenInQuery,
		Addr: "127.0.0.1:8080", AdminAddr: "127.0.0.1:9090",
		RateLimit: 50, RateBurst: 100, ReloadInterval: 5 * time.Second,
		ShutdownTimeout: 15 * time.Second, ShutdownDelay: 3 * time.Second, LogLevel: slog.LevelInfo,
	}
	if fmt.Sprintf("%+v", *c) != fmt.Sprintf("%+v", want) {
		t.Errorf("Load() = %+v\nwant     %+v", *c, want)
	}
	if c.Signed() {
		t.Error("Signed() = true without a secret")
	}
}

func TestLoadSigned(t *testing.T) {
	setEnv(t, map[string]string{
		"JITSI_BASE_URL": "https://Meet.Example.com:8443/", "JITSI_APP_ID": "app", "JITSI_API_KEY": goodSecret,
		"JITSI_SIGNING_ALG": "HS512", "JITSI_MODERATOR_CLAIM": "bool", "JITSI_TOP_LEVEL_MODERATOR": "true",
		"JITSI_TOKEN_PLACEMENT": "fragment", "JITSI_TOKEN_TTL": "2h", "JITSI_TOKEN_MAX_TTL": "48h",
		"SIGNER_ADDR": "0.0.0.0:8080", "SIGNER_INSECURE_ALLOW_ANONYMOUS": "true", "SIGNER_LOG_LEVEL": "debug",
	})
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if !c.Signed() || string(c.Secret) != goodSecret || c.SigningAlg != "HS512" || c.BaseURL != "https://meet.example.com:8443" ||
		c.Subject != "meet.example.com" || c.ModeratorForm != jitsi.ModeratorBool || !c.TopLevelModerator ||
		c.TokenPlacement != jitsi.TokenInFragment || c.TokenTTL != 2*time.Hour || c.TokenMaxTTL != 48*time.Hour ||
		!c.AllowAnonymous || c.LogLevel != slog.LevelDebug {
		t.Errorf("Load() = %+v", c)
	}
}

func TestLoadRSAAndJaaS(t *testing.T) {
	const app = "vpaas-magic-cookie-1fc542a3e4414a44b2611668195e2bfe"
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{
			name: "self-hosted RS256 with a keys listener",
			env: map[string]string{"JITSI_SIGNING_ALG": "RS256", "JITSI_KEYS_DIR": "/keys", "JITSI_APP_ID": "app",
				"SIGNER_KEYS_ADDR": "0.0.0.0:8443", "JITSI_KEYS_POLL_INTERVAL": "30s"},
			want: "RS256 /keys 30s 0 0.0.0.0:8443 https://meet.jit.si  signed",
		},
		{
			name: "jaas",
			env:  map[string]string{"JITSI_MODE": "jaas", "JITSI_SIGNING_ALG": "RS256", "JITSI_KEYS_DIR": "/keys", "JITSI_APP_ID": app},
			want: "RS256 /keys 5s 1  https://8x8.vc " + app + "/ signed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			c, err := Load()
			if err != nil {
				t.Fatal(err)
			}
			signed := "unsigned"
			if c.Signed() {
				signed = "signed"
			}
			got := fmt.Sprintf("%s %s %s %d %s %s %s %s", c.SigningAlg, c.KeysDir, c.KeysPollInterval, c.Mode, c.KeysAddr, c.BaseURL, c.KIDPrefix(), signed)
			if got != tt.want {
				t.Errorf("Load() = %s; want %s", got, tt.want)
			}
		})
	}
}

func TestLoadSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte(goodSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	setEnv(t, map[string]string{"JITSI_APP_ID": "app", "JITSI_API_KEY_FILE": path})
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Secret) != goodSecret {
		t.Errorf("secret from file = %d bytes; want the file's content without its trailing newline", len(c.Secret))
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{
			name: "short secret",
			env:  map[string]string{"JITSI_APP_ID": "app", "JITSI_API_KEY": "short"},
			want: []string{"JITSI_API_KEY holds a secret of 5 bytes; at least 32 are required (try: openssl rand -base64 48)"},
		},
		{
			name: "short secret from file",
			env:  map[string]string{"JITSI_APP_ID": "app", "JITSI_API_KEY_FILE": short},
			want: []string{"JITSI_API_KEY_FILE holds a secret of 8 bytes; at least 32 are required (try: openssl rand -base64 48)"},
		},
		{
			name: "missing secret file",
			env:  map[string]string{"JITSI_APP_ID": "app", "JITSI_API_KEY_FILE": filepath.Join(dir, "nope")},
			want: []string{"JITSI_API_KEY_FILE " + filepath.Join(dir, "nope") + " cannot be read: no such file or directory"},
		},
		{
			name: "empty secret file",
			env:  map[string]string{"JITSI_APP_ID": "app", "JITSI_API_KEY_FILE": empty},
			want: []string{"JITSI_API_KEY_FILE " + empty + " is empty"},
		},
		{
			name: "both secrets",
			env:  map[string]string{"JITSI_APP_ID": "app", "JITSI_API_KEY": goodSecret, "JITSI_API_KEY_FILE": short},
			want: []string{"JITSI_API_KEY_FILE is set together with JITSI_API_KEY; set one of them"},
		},
		{
			name: "secret without app id",
			env:  map[string]string{"JITSI_API_KEY": goodSecret},
			want: []string{"JITSI_APP_ID is required when JITSI_API_KEY is set (it is the iss claim Prosody checks)"},
		},
		{
			name: "app id without secret",
			env:  map[string]string{"JITSI_APP_ID": "app"},
			want: []string{"JITSI_APP_ID is set but no signing secret is: set JITSI_API_KEY or JITSI_API_KEY_FILE, or unset JITSI_APP_ID for unsigned links"},
		},
		{
			name: "every bad variable at once",
			env: map[string]string{
				"JITSI_BASE_URL": "meet.example.com", "JITSI_SIGNING_ALG": "ES256", "JITSI_TOKEN_TTL": "1 day",
				"JITSI_TOKEN_MAX_TTL": "10s", "JITSI_CLOCK_SKEW": "1h", "JITSI_MODERATOR_CLAIM": "yes",
				"JITSI_TOP_LEVEL_MODERATOR": "maybe", "JITSI_TOKEN_PLACEMENT": "header", "SIGNER_ADDR": "8080",
				"SIGNER_ADMIN_ADDR": "example.com:9090", "SIGNER_SHUTDOWN_TIMEOUT": "0s", "SIGNER_SHUTDOWN_DELAY": "-1s",
				"SIGNER_LOG_LEVEL": "loud", "SIGNER_INSECURE_ALLOW_ANONYMOUS": "sure",
				"SIGNER_RATE_LIMIT": "fast", "SIGNER_RATE_BURST": "0", "SIGNER_RELOAD_INTERVAL": "1ms",
			},
			want: []string{
				`SIGNER_ADDR "8080" must be host:port`,
				`SIGNER_ADMIN_ADDR "example.com:9090" must name an IP address or localhost`,
				`JITSI_TOKEN_TTL "1 day" is not a Go duration such as 90s, 15m or 24h`,
				`JITSI_TOKEN_MAX_TTL 10s must be between 1m0s and 720h0m0s`,
				`JITSI_CLOCK_SKEW 1h0m0s must be between 0s and 10m0s`,
				`SIGNER_RATE_LIMIT "fast" is not a number`,
				`SIGNER_RATE_BURST 0 must be between 1 and 1e+06`,
				`SIGNER_RELOAD_INTERVAL 1ms must be between 100ms and 1h0m0s`,
				`SIGNER_SHUTDOWN_TIMEOUT 0s must be between 1s and 10m0s`,
				`SIGNER_SHUTDOWN_DELAY -1s must be between 0s and 5m0s`,
				`JITSI_TOP_LEVEL_MODERATOR "maybe" must be true or false`,
				`SIGNER_INSECURE_ALLOW_ANONYMOUS "sure" must be true or false`,
				`JITSI_BASE_URL base URL "meet.example.com" must start with https:// or http://`,
				`JITSI_SIGNING_ALG "ES256" is not supported; use HS256, HS384, HS512, RS256, RS384 or RS512`,
				`JITSI_MODERATOR_CLAIM "yes" must be string or bool`,
				`JITSI_TOKEN_PLACEMENT "header" must be query or fragment`,
				`SIGNER_LOG_LEVEL "loud" must be debug, info, warn or error`,
			},
		},
		{
			name: "RS256 without a key folder or app id",
			env:  map[string]string{"JITSI_SIGNING_ALG": "RS256"},
			want: []string{
				"JITSI_KEYS_DIR is required when JITSI_SIGNING_ALG is RS256 (the folder of PEM private keys)",
				"JITSI_APP_ID is required when JITSI_SIGNING_ALG is RS256 (it is the iss claim Prosody checks)",
			},
		},
		{
			name: "RS384 with an HMAC secret and key id",
			env: map[string]string{"JITSI_SIGNING_ALG": "RS384", "JITSI_KEYS_DIR": "/keys", "JITSI_APP_ID": "app",
				"JITSI_API_KEY": goodSecret, "JITSI_API_KEY_FILE": "/secret", "JITSI_KEY_ID": "k1"},
			want: []string{
				"JITSI_API_KEY is set but JITSI_SIGNING_ALG RS384 signs with the keys in JITSI_KEYS_DIR; unset it",
				"JITSI_API_KEY_FILE is set but JITSI_SIGNING_ALG RS384 signs with the keys in JITSI_KEYS_DIR; unset it",
				"JITSI_KEY_ID is set but with JITSI_SIGNING_ALG RS384 each key's kid is its file name in JITSI_KEYS_DIR; unset it",
			},
		},
		{
			name: "HS256 with a key folder and keys listener",
			env: map[string]string{"JITSI_KEYS_DIR": "/keys", "JITSI_APP_ID": "app", "JITSI_API_KEY": goodSecret,
				"SIGNER_KEYS_ADDR": "127.0.0.1:8081"},
			want: []string{
				"JITSI_KEYS_DIR is set but JITSI_SIGNING_ALG HS256 signs with JITSI_API_KEY; set JITSI_SIGNING_ALG to RS256, RS384 or RS512, or unset JITSI_KEYS_DIR",
				"SIGNER_KEYS_ADDR is set but JITSI_SIGNING_ALG HS256 publishes no keys; unset it",
			},
		},
		{
			name: "jaas with HS256, a bad app id and another host",
			env: map[string]string{"JITSI_MODE": "jaas", "JITSI_APP_ID": "my-app", "JITSI_API_KEY": goodSecret,
				"JITSI_BASE_URL": "https://meet.example.com"},
			want: []string{
				"JITSI_SIGNING_ALG must be RS256 when JITSI_MODE is jaas (8x8 JaaS verifies RS256 only)",
				`JITSI_APP_ID "my-app" is not an 8x8 JaaS AppID: it looks like vpaas-magic-cookie-<32 hex digits> (JaaS console, API keys)`,
				"JITSI_BASE_URL is https://meet.example.com but JaaS meetings are at https://8x8.vc; unset it",
			},
		},
		{
			name: "jaas with RS512",
			env: map[string]string{"JITSI_MODE": "jaas", "JITSI_SIGNING_ALG": "RS512", "JITSI_KEYS_DIR": "/keys",
				"JITSI_APP_ID": "vpaas-magic-cookie-1fc542a3e4414a44b2611668195e2bfe"},
			want: []string{"JITSI_SIGNING_ALG must be RS256 when JITSI_MODE is jaas (8x8 JaaS verifies RS256 only)"},
		},
		{
			name: "bad mode, poll interval and keys listener",
			env: map[string]string{"JITSI_MODE": "cloud", "JITSI_KEYS_POLL_INTERVAL": "1ms", "JITSI_SIGNING_ALG": "RS256",
				"JITSI_KEYS_DIR": "/keys", "JITSI_APP_ID": "app", "SIGNER_KEYS_ADDR": "127.0.0.1:8080"},
			want: []string{
				"JITSI_KEYS_POLL_INTERVAL 1ms must be between 1s and 10m0s",
				`JITSI_MODE "cloud" must be self-hosted or jaas`,
				"SIGNER_KEYS_ADDR must differ from SIGNER_ADDR and SIGNER_ADMIN_ADDR (127.0.0.1:8080)",
			},
		},
		{
			name: "key id with a space",
			env:  map[string]string{"JITSI_APP_ID": "app", "JITSI_API_KEY": goodSecret, "JITSI_KEY_ID": "key one"},
			want: []string{"JITSI_KEY_ID must be 1 to 128 printable ASCII characters without spaces, quotes or backslashes"},
		},
		{
			name: "ttl above max",
			env:  map[string]string{"JITSI_TOKEN_TTL": "48h", "JITSI_TOKEN_MAX_TTL": "24h"},
			want: []string{"JITSI_TOKEN_TTL 48h0m0s is longer than JITSI_TOKEN_MAX_TTL 24h0m0s"},
		},
		{
			name: "same listener twice",
			env:  map[string]string{"SIGNER_ADDR": "127.0.0.1:8080", "SIGNER_ADMIN_ADDR": "127.0.0.1:8080"},
			want: []string{"SIGNER_ADMIN_ADDR must differ from SIGNER_ADDR (127.0.0.1:8080)"},
		},
		{
			name: "anonymous on a public address",
			env:  map[string]string{"SIGNER_ADDR": ":8080"},
			want: []string{"SIGNER_CALLERS_FILE is not set and SIGNER_ADDR :8080 is not a loopback address: anonymous callers are allowed on loopback only; set SIGNER_CALLERS_FILE, or SIGNER_INSECURE_ALLOW_ANONYMOUS=true to accept the risk"},
		},
		{
			name: "base URL with a path",
			env:  map[string]string{"JITSI_BASE_URL": "https://meet.example.com/acme"},
			want: []string{`JITSI_BASE_URL base URL "https://meet.example.com/acme" must be scheme://host[:port] only; send the tenant with each request`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			c, err := Load()
			if err == nil {
				t.Fatalf("Load() = %+v; want errors", c)
			}
			if c == nil {
				t.Fatal("Load() returned no partial configuration with its errors")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("Load() error =\n%s\nwant\n%s", got, want)
			}
			if strings.Contains(err.Error(), goodSecret) {
				t.Error("the error reveals the secret")
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:1": true, "[::1]:8080": true, "127.3.2.1:80": true,
		":8080": false, "0.0.0.0:8080": false, "10.0.0.1:8080": false, "[::]:8080": false, "nonsense": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v; want %v", addr, got, want)
		}
	}
}

// TestSecretNeverPrints shows that the secret cannot reach logs or output
// through formatting, slog or JSON.
func TestSecretNeverPrints(t *testing.T) {
	s := Secret(goodSecret)
	c := Config{Secret: s}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("config", "secret", s, "config", c)
	log.Info("config", slog.Any("secret", s))
	fmt.Fprintf(&buf, "%v %+v %s %q %x %#v %v", s, s, s, s, s, s, c)
	js, _ := json.Marshal(c)
	buf.Write(js)
	if strings.Contains(buf.String(), goodSecret) || strings.Contains(buf.String(), fmt.Sprintf("%x", goodSecret)) {
		t.Fatalf("the secret was printed: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "[redacted]") {
		t.Fatalf("output does not say [redacted]: %s", buf.String())
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	var buf bytes.Buffer
	if err := Usage(&buf); err != nil {
		t.Fatal(err)
	}
	for _, k := range allVars {
		if !strings.Contains(buf.String(), k) {
			t.Errorf("Usage() does not list %s", k)
		}
	}
}
