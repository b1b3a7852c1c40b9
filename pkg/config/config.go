// Package config reads jitsi-signer's settings from the environment,
// validates them, and reports every problem at once, each naming its
// variable.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/kelseyhightower/envconfig"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

// env is the raw environment. Every value is read as a string and parsed in
// Load, so that one bad value does not hide the next.
type env struct {
	BaseURL           string `envconfig:"JITSI_BASE_URL" default:"https://meet.jit.si" desc:"Jitsi deployment the links lead to: scheme://host[:port], no path"`
	AppID             string `envconfig:"JITSI_APP_ID" desc:"iss claim: Prosody's app_id (JWT_APP_ID); required when signing"`
	APIKey            string `envconfig:"JITSI_API_KEY" desc:"HMAC secret shared with Prosody (app_secret, JWT_APP_SECRET), at least 32 bytes; unset for unsigned links"`
	APIKeyFile        string `envconfig:"JITSI_API_KEY_FILE" desc:"file holding JITSI_API_KEY (a trailing newline is ignored); exclusive with JITSI_API_KEY"`
	SigningAlg        string `envconfig:"JITSI_SIGNING_ALG" default:"HS256" desc:"JWS algorithm: HS256, HS384 or HS512 (JITSI_API_KEY), or RS256, RS384 or RS512 (JITSI_KEYS_DIR); must match Prosody (JWT_SIGN_TYPE)"`
	KeyID             string `envconfig:"JITSI_KEY_ID" desc:"kid header to write with an HMAC secret; empty writes none"`
	KeysDir           string `envconfig:"JITSI_KEYS_DIR" desc:"folder of PEM RSA private keys for RS*: <name>.pem has kid <name>; a file named active names the signing key when there are several"`
	KeysPoll          string `envconfig:"JITSI_KEYS_POLL_INTERVAL" default:"5s" desc:"how often JITSI_KEYS_DIR is checked for changes (Go duration); SIGHUP reloads at once"`
	Mode              string `envconfig:"JITSI_MODE" default:"self-hosted" desc:"self-hosted, or jaas for 8x8 JaaS (RS256, JITSI_APP_ID the vpaas-magic-cookie-… AppID)"`
	Audience          string `envconfig:"JITSI_AUDIENCE" default:"jitsi" desc:"aud claim; must be one of Prosody's accepted audiences"`
	Subject           string `envconfig:"JITSI_SUBJECT" desc:"sub claim for links without a tenant; default: the host of JITSI_BASE_URL"`
	TokenTTL          string `envconfig:"JITSI_TOKEN_TTL" default:"24h" desc:"token lifetime when a request names none (Go duration)"`
	TokenMaxTTL       string `envconfig:"JITSI_TOKEN_MAX_TTL" default:"24h" desc:"longest token lifetime a request may ask for (Go duration, at most 720h)"`
	ClockSkew         string `envconfig:"JITSI_CLOCK_SKEW" default:"30s" desc:"how far nbf is backdated for Jitsi servers whose clock is behind (Go duration, at most 10m)"`
	ModeratorClaim    string `envconfig:"JITSI_MODERATOR_CLAIM" default:"string" desc:"form of context.user.moderator: string (\"true\"/\"false\") or bool"`
	TopLevelModerator string `envconfig:"JITSI_TOP_LEVEL_MODERATOR" default:"false" desc:"also write a top-level boolean moderator claim (token_moderation plugin)"`
	TokenPlacement    string `envconfig:"JITSI_TOKEN_PLACEMENT" default:"query" desc:"where the link carries the token: query (?jwt=) or fragment (#jwt=, newer clients)"`
	Addr              string `envconfig:"SIGNER_ADDR" default:"127.0.0.1:8080" desc:"API listener (host:port)"`
	AdminAddr         string `envconfig:"SIGNER_ADMIN_ADDR" default:"127.0.0.1:9090" desc:"admin listener for /healthz, /readyz and /metrics (host:port)"`
	KeysAddr          string `envconfig:"SIGNER_KEYS_ADDR" desc:"listener for /keys/ and /.well-known/jwks.json alone (host:port); unset serves them on SIGNER_ADDR"`
	CallersFile       string `envconfig:"SIGNER_CALLERS_FILE" desc:"JSON or YAML file of callers and the SHA-256 of their API keys; unset allows anonymous calls on loopback only"`
	AllowAnonymous    string `envconfig:"SIGNER_INSECURE_ALLOW_ANONYMOUS" default:"false" desc:"allow unauthenticated calls on a non-loopback SIGNER_ADDR when no callers file is set"`
	RateLimit         string `envconfig:"SIGNER_RATE_LIMIT" default:"50" desc:"requests per second each caller may make, unless its policy says otherwise; 0 for unlimited"`
	RateBurst         string `envconfig:"SIGNER_RATE_BURST" default:"100" desc:"requests a caller may make at once above SIGNER_RATE_LIMIT"`
	ReloadInterval    string `envconfig:"SIGNER_RELOAD_INTERVAL" default:"5s" desc:"how often the callers file is checked for changes (SIGHUP reloads at once)"`
	ShutdownTimeout   string `envconfig:"SIGNER_SHUTDOWN_TIMEOUT" default:"15s" desc:"bound on finishing in-flight requests at shutdown (Go duration)"`
	ShutdownDelay     string `envconfig:"SIGNER_SHUTDOWN_DELAY" default:"3s" desc:"on SIGTERM, how long /readyz reports 503 while the API keeps serving, before the listeners close (Go duration)"`
	Pprof             string `envconfig:"SIGNER_PPROF" default:"false" desc:"serve Go's profiler at /debug/pprof/ on the admin listener"`
	LogLevel          string `envconfig:"SIGNER_LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
}

// Config is the validated configuration.
type Config struct {
	BaseURL string
	AppID   string
	// Secret is the HMAC signing secret; empty means unsigned links.
	Secret     Secret
	SigningAlg string
	KeyID      string
	// KeysDir is the folder of RSA private keys; set for RS* algorithms.
	KeysDir           string
	KeysPollInterval  time.Duration
	Mode              jitsi.Mode
	Audience          string
	Subject           string
	TokenTTL          time.Duration
	TokenMaxTTL       time.Duration
	ClockSkew         time.Duration
	ModeratorForm     jitsi.ModeratorForm
	TopLevelModerator bool
	TokenPlacement    jitsi.TokenPlacement
	Addr              string
	AdminAddr         string
	KeysAddr          string
	CallersFile       string
	AllowAnonymous    bool
	RateLimit         float64
	RateBurst         int
	ReloadInterval    time.Duration
	ShutdownTimeout   time.Duration
	ShutdownDelay     time.Duration
	Pprof             bool
	LogLevel          slog.Level
}

// Limits on durations.
const (
	MaxTokenTTL = jitsi.MaxAllowedTTL
	MaxSkew     = 10 * time.Minute
	// maxSecretFileBytes caps what is read from JITSI_API_KEY_FILE.
	maxSecretFileBytes = 64 << 10
)

// Signed reports whether links are signed.
func (c *Config) Signed() bool { return len(c.Secret) > 0 || c.KeysDir != "" }

// KIDPrefix is what comes before a key file's name in its kid: the AppID
// and a slash in JaaS mode, nothing otherwise.
func (c *Config) KIDPrefix() string {
	if c.Mode == jitsi.ModeJaaS {
		return c.AppID + "/"
	}
	return ""
}

// CallerDefaults returns the service-wide limits caller policies fall
// back to.
func (c *Config) CallerDefaults() caller.Defaults {
	return caller.Defaults{MaxTTL: c.TokenMaxTTL, Rate: caller.Rate{PerSecond: c.RateLimit, Burst: c.RateBurst}}
}

// IssuerConfig returns the part of the configuration a jitsi.Issuer needs.
func (c *Config) IssuerConfig() jitsi.Config {
	return jitsi.Config{
		Mode:              c.Mode,
		BaseURL:           c.BaseURL,
		AppID:             c.AppID,
		Audience:          c.Audience,
		Subject:           c.Subject,
		DefaultTTL:        c.TokenTTL,
		MaxTTL:            c.TokenMaxTTL,
		ClockSkew:         c.ClockSkew,
		ModeratorForm:     c.ModeratorForm,
		TopLevelModerator: c.TopLevelModerator,
		TokenPlacement:    c.TokenPlacement,
	}
}

// Load reads the environment and validates it. The error, when there is
// one, joins one message per bad variable; the Config is then incomplete
// and serves only to find further problems (such as an unreadable callers
// file) to report with them.
func Load() (*Config, error) {
	var e env
	if err := envconfig.Process("", &e); err != nil {
		// Every field is a string, so only a malformed tag can fail here.
		return nil, fmt.Errorf("config: %w", err)
	}
	p := parser{}
	c := &Config{
		AppID:             e.AppID,
		KeyID:             e.KeyID,
		Audience:          e.Audience,
		CallersFile:       e.CallersFile,
		KeysDir:           e.KeysDir,
		KeysPollInterval:  p.duration("JITSI_KEYS_POLL_INTERVAL", e.KeysPoll, time.Second, 10*time.Minute),
		Addr:              p.addr("SIGNER_ADDR", e.Addr),
		AdminAddr:         p.addr("SIGNER_ADMIN_ADDR", e.AdminAddr),
		TokenTTL:          p.duration("JITSI_TOKEN_TTL", e.TokenTTL, jitsi.MinTTL, MaxTokenTTL),
		TokenMaxTTL:       p.duration("JITSI_TOKEN_MAX_TTL", e.TokenMaxTTL, jitsi.MinTTL, MaxTokenTTL),
		ClockSkew:         p.duration("JITSI_CLOCK_SKEW", e.ClockSkew, 0, MaxSkew),
		RateLimit:         p.number("SIGNER_RATE_LIMIT", e.RateLimit, 0, 1e6),
		RateBurst:         int(p.number("SIGNER_RATE_BURST", e.RateBurst, 1, 1e6)),
		ReloadInterval:    p.duration("SIGNER_RELOAD_INTERVAL", e.ReloadInterval, 100*time.Millisecond, time.Hour),
		ShutdownTimeout:   p.duration("SIGNER_SHUTDOWN_TIMEOUT", e.ShutdownTimeout, time.Second, 10*time.Minute),
		ShutdownDelay:     p.duration("SIGNER_SHUTDOWN_DELAY", e.ShutdownDelay, 0, 5*time.Minute),
		TopLevelModerator: p.boolean("JITSI_TOP_LEVEL_MODERATOR", e.TopLevelModerator),
		AllowAnonymous:    p.boolean("SIGNER_INSECURE_ALLOW_ANONYMOUS", e.AllowAnonymous),
		Pprof:             p.boolean("SIGNER_PPROF", e.Pprof),
	}

	if u, err := jitsi.ParseBaseURL(e.BaseURL); err != nil {
		p.add("JITSI_BASE_URL", "%s", strings.TrimPrefix(err.Error(), "jitsi: "))
	} else {
		c.BaseURL = u.String()
		c.Subject = u.Hostname()
	}
	if e.Subject != "" {
		c.Subject = e.Subject
	}

	if e.KeysAddr != "" {
		c.KeysAddr = p.addr("SIGNER_KEYS_ADDR", e.KeysAddr)
	}
	switch e.Mode {
	case "self-hosted":
		c.Mode = jitsi.ModeSelfHosted
	case "jaas":
		c.Mode = jitsi.ModeJaaS
	default:
		p.add("JITSI_MODE", "%q must be self-hosted or jaas", e.Mode)
	}

	rsa := jitsi.IsRSAAlgorithm(e.SigningAlg)
	switch {
	case jitsi.IsHMACAlgorithm(e.SigningAlg), rsa:
		c.SigningAlg = e.SigningAlg
	default:
		p.add("JITSI_SIGNING_ALG", "%q is not supported; use HS256, HS384, HS512, RS256, RS384 or RS512", e.SigningAlg)
	}

	if rsa {
		// RSA keys sign; an HMAC secret has no place.
		if e.KeysDir == "" {
			p.add("JITSI_KEYS_DIR", "is required when JITSI_SIGNING_ALG is %s (the folder of PEM private keys)", e.SigningAlg)
		}
		if e.APIKey != "" {
			p.add("JITSI_API_KEY", "is set but JITSI_SIGNING_ALG %s signs with the keys in JITSI_KEYS_DIR; unset it", e.SigningAlg)
		}
		if e.APIKeyFile != "" {
			p.add("JITSI_API_KEY_FILE", "is set but JITSI_SIGNING_ALG %s signs with the keys in JITSI_KEYS_DIR; unset it", e.SigningAlg)
		}
		if e.KeyID != "" {
			p.add("JITSI_KEY_ID", "is set but with JITSI_SIGNING_ALG %s each key's kid is its file name in JITSI_KEYS_DIR; unset it", e.SigningAlg)
		}
		if e.AppID == "" {
			p.add("JITSI_APP_ID", "is required when JITSI_SIGNING_ALG is %s (it is the iss claim Prosody checks)", e.SigningAlg)
		}
	} else if c.SigningAlg != "" {
		if e.KeysDir != "" {
			p.add("JITSI_KEYS_DIR", "is set but JITSI_SIGNING_ALG %s signs with JITSI_API_KEY; set JITSI_SIGNING_ALG to RS256, RS384 or RS512, or unset JITSI_KEYS_DIR", e.SigningAlg)
		}
		c.Secret = p.secret(e.APIKey, e.APIKeyFile)
	}
	if e.KeysAddr != "" && !rsa {
		p.add("SIGNER_KEYS_ADDR", "is set but JITSI_SIGNING_ALG %s publishes no keys; unset it", e.SigningAlg)
	}
	if c.Mode == jitsi.ModeJaaS {
		if e.SigningAlg != "RS256" {
			p.add("JITSI_SIGNING_ALG", "must be RS256 when JITSI_MODE is jaas (8x8 JaaS verifies RS256 only)")
		}
		if e.AppID != "" && !jitsi.ValidJaaSAppID(e.AppID) {
			p.add("JITSI_APP_ID", "%q is not an 8x8 JaaS AppID: it looks like vpaas-magic-cookie-<32 hex digits> (JaaS console, API keys)", truncate(e.AppID))
		}
		if _, set := os.LookupEnv("JITSI_BASE_URL"); !set {
			c.BaseURL = jitsi.JaaSBaseURL
		} else if c.BaseURL != "" && c.BaseURL != jitsi.JaaSBaseURL {
			p.add("JITSI_BASE_URL", "is %s but JaaS meetings are at %s; unset it", c.BaseURL, jitsi.JaaSBaseURL)
		}
	}

	if !rsa && (e.APIKey != "" || e.APIKeyFile != "") {
		if e.AppID == "" {
			p.add("JITSI_APP_ID", "is required when JITSI_API_KEY is set (it is the iss claim Prosody checks)")
		}
		if e.Audience == "" {
			p.add("JITSI_AUDIENCE", "must not be empty when signing")
		}
	} else if !rsa && e.AppID != "" && e.APIKey == "" && e.APIKeyFile == "" {
		p.add("JITSI_APP_ID", "is set but no signing secret is: set JITSI_API_KEY or JITSI_API_KEY_FILE, or unset JITSI_APP_ID for unsigned links")
	}
	if c.TokenTTL > c.TokenMaxTTL && c.TokenMaxTTL > 0 {
		p.add("JITSI_TOKEN_TTL", "%s is longer than JITSI_TOKEN_MAX_TTL %s", c.TokenTTL, c.TokenMaxTTL)
	}

	switch e.ModeratorClaim {
	case "string":
		c.ModeratorForm = jitsi.ModeratorString
	case "bool":
		c.ModeratorForm = jitsi.ModeratorBool
	default:
		p.add("JITSI_MODERATOR_CLAIM", "%q must be string or bool", e.ModeratorClaim)
	}
	switch e.TokenPlacement {
	case "query":
		c.TokenPlacement = jitsi.TokenInQuery
	case "fragment":
		c.TokenPlacement = jitsi.TokenInFragment
	default:
		p.add("JITSI_TOKEN_PLACEMENT", "%q must be query or fragment", e.TokenPlacement)
	}
	if err := c.LogLevel.UnmarshalText([]byte(e.LogLevel)); err != nil || !validLevel(e.LogLevel) {
		p.add("SIGNER_LOG_LEVEL", "%q must be debug, info, warn or error", e.LogLevel)
	}
	if c.Addr != "" && c.Addr == c.AdminAddr && !strings.HasSuffix(c.Addr, ":0") {
		p.add("SIGNER_ADMIN_ADDR", "must differ from SIGNER_ADDR (%s)", c.Addr)
	}
	if c.KeysAddr != "" && (c.KeysAddr == c.Addr || c.KeysAddr == c.AdminAddr) && !strings.HasSuffix(c.KeysAddr, ":0") {
		p.add("SIGNER_KEYS_ADDR", "must differ from SIGNER_ADDR and SIGNER_ADMIN_ADDR (%s)", c.KeysAddr)
	}
	if e.CallersFile == "" && !c.AllowAnonymous && c.Addr != "" && !IsLoopback(c.Addr) {
		p.add("SIGNER_CALLERS_FILE", "is not set and SIGNER_ADDR %s is not a loopback address: anonymous callers are allowed on loopback only; set SIGNER_CALLERS_FILE, or SIGNER_INSECURE_ALLOW_ANONYMOUS=true to accept the risk", c.Addr)
	}
	if e.KeyID != "" && !printableKeyID(e.KeyID) {
		p.add("JITSI_KEY_ID", "must be 1 to 128 printable ASCII characters without spaces, quotes or backslashes")
	}
	return c, p.err()
}

// printableKeyID reports whether a kid is safe in a header, a log line and
// a metric label.
func printableKeyID(kid string) bool {
	if len(kid) > 128 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		if c := kid[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// truncate shortens a value quoted in a message.
func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// IsLoopback reports whether a host:port address listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validLevel(s string) bool {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}

// Variables returns the name of every environment variable the service
// reads.
func Variables() []string {
	t := reflect.TypeFor[env]()
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		names = append(names, t.Field(i).Tag.Get("envconfig"))
	}
	return names
}

// Usage writes every variable with its default and meaning.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 1, 4, 2, ' ', 0)
	const format = `jitsi-signer is configured through the environment:

VARIABLE	DEFAULT	MEANING
{{range .}}{{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`
	if err := envconfig.Usagef("", &env{}, tw, format); err != nil {
		return err
	}
	return tw.Flush()
}

// parser collects one error per bad variable.
type parser struct{ errs []error }

func (p *parser) add(name, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s %s", name, fmt.Sprintf(format, args...)))
}

func (p *parser) err() error { return errors.Join(p.errs...) }

func (p *parser) duration(name, raw string, lo, hi time.Duration) time.Duration {
	d, err := time.ParseDuration(raw)
	if err != nil {
		p.add(name, "%q is not a Go duration such as 90s, 15m or 24h", raw)
		return 0
	}
	if d < lo || d > hi {
		p.add(name, "%s must be between %s and %s", d, lo, hi)
		return 0
	}
	return d
}

func (p *parser) number(name, raw string, lo, hi float64) float64 {
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || f != f {
		p.add(name, "%q is not a number", raw)
		return 0
	}
	if f < lo || f > hi {
		p.add(name, "%v must be between %v and %v", f, lo, hi)
		return 0
	}
	return f
}

func (p *parser) boolean(name, raw string) bool {
	b, err := strconv.ParseBool(raw)
	if err != nil {
		p.add(name, "%q must be true or false", raw)
	}
	return b
}

func (p *parser) addr(name, raw string) string {
	host, port, err := net.SplitHostPort(raw)
	if err != nil {
		p.add(name, "%q must be host:port", raw)
		return ""
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		p.add(name, "%q has no valid port", raw)
		return ""
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		p.add(name, "%q must name an IP address or localhost", raw)
		return ""
	}
	return raw
}

// secret reads the HMAC secret from JITSI_API_KEY or JITSI_API_KEY_FILE.
// Messages never include the secret.
func (p *parser) secret(value, file string) Secret {
	if value != "" && file != "" {
		p.add("JITSI_API_KEY_FILE", "is set together with JITSI_API_KEY; set one of them")
		return nil
	}
	name := "JITSI_API_KEY"
	raw := []byte(value)
	if file != "" {
		name = "JITSI_API_KEY_FILE"
		b, err := readSecretFile(file)
		if err != nil {
			p.add(name, "%v", err)
			return nil
		}
		raw = b
	}
	if len(raw) == 0 {
		if file != "" {
			p.add(name, "%s is empty", file)
		}
		return nil
	}
	if len(raw) < jitsi.MinSecretBytes {
		p.add(name, "holds a secret of %d bytes; at least %d are required (try: openssl rand -base64 48)", len(raw), jitsi.MinSecretBytes)
		return nil
	}
	return Secret(raw)
}

func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read: %w", path, errors.Unwrap(err))
	}
	if len(b) > maxSecretFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSecretFileBytes)
	}
	b = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
	return b, nil
}

// Secret is key material. It never prints: String, GoString, LogValue and
// MarshalText all give "[redacted]".
type Secret []byte

const redacted = "[redacted]"

func (Secret) String() string   { return redacted }
func (Secret) GoString() string { return redacted }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
