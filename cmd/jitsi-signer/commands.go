package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
	"github.com/jitsi-signer/jitsi-signer/pkg/server"
)

// stdin is what hash-key and verify read; tests replace it.
var stdin io.Reader = os.Stdin

const commandsHelp = `Commands:
  serve        run the service (the default)
  sign         mint a meeting link from the configuration in the environment
  verify       check a token or meeting link the way Prosody does, offline
  hash-key     print the SHA-256 of an API key for the callers file
  healthcheck  probe /readyz on SIGNER_ADMIN_ADDR; exit 0 when ready

Run "jitsi-signer <command> -h" for a command's flags.
`

// run dispatches on the first argument; without a command it serves.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return runServe(ctx, args[1:], stdout, stderr)
		case "sign":
			return runSign(ctx, args[1:], stdout, stderr)
		case "verify":
			return runVerify(args[1:], stdout, stderr)
		case "hash-key":
			return runHashKey(args[1:], stdout, stderr)
		case "healthcheck":
			return runHealthcheck(ctx, args[1:], stdout, stderr)
		}
	}
	return runServe(ctx, args, stdout, stderr)
}

// newFlagSet returns a flag set whose usage prints text, then the flags.
func newFlagSet(name, text string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("jitsi-signer "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, text)
		fmt.Fprintf(stderr, "\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args. -h prints the full usage and reports help; a bad
// flag is one line on stderr and errUsage.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (help bool, err error) {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err = fs.Parse(args)
	fs.SetOutput(stderr)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage()
		return true, nil
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v (see %s -h)\n", fs.Name(), err, fs.Name())
		return false, errUsage
	}
	return false, nil
}

// usageError prints a one-line usage problem and returns errUsage.
func usageError(stderr io.Writer, cmd, format string, args ...any) error {
	fmt.Fprintf(stderr, "jitsi-signer %s: %s (see jitsi-signer %s -h)\n", cmd, fmt.Sprintf(format, args...), cmd)
	return errUsage
}

const signUsage = `Usage: jitsi-signer sign -room ROOM -name NAME [-role moderator] [-tenant T] [-ttl 2h] [-json]

Mints a meeting link with the configuration in the environment (JITSI_* variables), as
POST /v1/links would, and prints the URL, or with -json the endpoint's JSON answer.
The link is written to the audit log on standard error.
`

func runSign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sign", signUsage, stderr)
	room := fs.String("room", "", "room as you name it, for example \"Booking 123\" (required)")
	name := fs.String("name", "", "the user's display name (required)")
	role := fs.String("role", "participant", "participant or moderator")
	tenant := fs.String("tenant", "", "tenant, for https://host/<tenant>/<room> links")
	ttl := fs.Duration("ttl", 0, "token lifetime, for example 2h (default JITSI_TOKEN_TTL)")
	email := fs.String("email", "", "the user's email address")
	id := fs.String("id", "", "the user's id in your system")
	avatar := fs.String("avatar", "", "the user's avatar URL")
	asJSON := fs.Bool("json", false, "print the endpoint's JSON answer instead of the URL")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError(stderr, "sign", "unexpected argument %q", fs.Arg(0))
	case *room == "":
		return usageError(stderr, "sign", "-room is required")
	case *name == "":
		return usageError(stderr, "sign", "-name is required")
	case *ttl < 0 || *ttl%time.Second != 0:
		return usageError(stderr, "sign", "-ttl %s must be a positive whole number of seconds", *ttl)
	}

	svc, err := load()
	if err != nil {
		return err
	}
	if svc.signer == nil {
		return errors.New("sign: no signing secret is configured: set JITSI_API_KEY or JITSI_API_KEY_FILE (and JITSI_APP_ID)")
	}
	issuer, err := jitsi.NewIssuer(svc.cfg.IssuerConfig(), svc.signer)
	if err != nil {
		return &configError{err: err}
	}
	// The link is made by the endpoint's own handler, in-process, so that
	// the answer, its checks and its audit line are the service's.
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: svc.cfg.LogLevel}))
	h := server.NewAPI(server.Options{
		Issuer:  issuer,
		Metrics: server.NewMetrics(prometheus.NewRegistry(), server.BuildInfo{Version: version, Revision: revision}),
		Logger:  log.With("source", "cli"),
	})
	body := map[string]any{
		"room": *room,
		"user": map[string]string{"name": *name, "email": *email, "id": *id, "avatar": *avatar},
		"role": *role,
	}
	if *tenant != "" {
		body["tenant"] = *tenant
	}
	if *ttl > 0 {
		body["ttl_seconds"] = int64(*ttl / time.Second)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/links", strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		var p struct{ Detail, Code string }
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		return fmt.Errorf("sign: %s (%s)", p.Detail, p.Code)
	}
	if *asJSON {
		_, err := fmt.Fprintln(stdout, rec.Body.String())
		return err
	}
	var link struct{ URL string }
	if err := json.Unmarshal(rec.Body.Bytes(), &link); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	_, err = fmt.Fprintln(stdout, link.URL)
	return err
}

const hashKeyUsage = `Usage: jitsi-signer hash-key < key
       jitsi-signer hash-key -generate

Reads an API key from standard input (one trailing newline is not part of the key) and prints
its SHA-256 in hex, as the callers file's key_sha256 wants it. With -generate, makes a new
random key (32 bytes, base64url) and prints the key, then its digest.
`

func runHashKey(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("hash-key", hashKeyUsage, stderr)
	generate := fs.Bool("generate", false, "make a new random key and print it with its digest")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "hash-key", "unexpected argument; the key is read from standard input, never from the command line")
	}
	if *generate {
		var b [32]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails.
		key := base64.RawURLEncoding.EncodeToString(b[:])
		_, err := fmt.Fprintf(stdout, "api_key:    %s\nkey_sha256: %s\n", key, caller.HashKey([]byte(key)))
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(stdin, caller.MaxKeyBytes+3))
	if err != nil {
		return fmt.Errorf("hash-key: reading standard input: %w", err)
	}
	key := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
	switch {
	case key == "":
		return errors.New("hash-key: standard input holds no key")
	case len(key) > caller.MaxKeyBytes:
		return fmt.Errorf("hash-key: the key is longer than %d bytes, which the service refuses", caller.MaxKeyBytes)
	case strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r == 0x7f }):
		return errors.New("hash-key: the key contains white space or control characters, which an Authorization header cannot carry")
	}
	_, err = fmt.Fprintln(stdout, caller.HashKey([]byte(key)))
	return err
}

const healthcheckUsage = `Usage: jitsi-signer healthcheck [-timeout 2s]

Probes GET /readyz on the admin listener named by SIGNER_ADMIN_ADDR (default 127.0.0.1:9090;
a wildcard host is probed on 127.0.0.1) and exits 0 when it answers 200, 1 otherwise.
For container HEALTHCHECKs in images without a shell.
`

func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", healthcheckUsage, stderr)
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "healthcheck", "unexpected argument %q", fs.Arg(0))
	}
	if *timeout <= 0 {
		return usageError(stderr, "healthcheck", "-timeout must be positive")
	}
	addr := os.Getenv("SIGNER_ADMIN_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9090"
	}
	target, err := readyzURL(addr)
	if err != nil {
		return &configError{err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("healthcheck: GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s answered %d, not ready", target, resp.StatusCode)
	}
	_, err = fmt.Fprintln(stdout, "ready")
	return err
}

// readyzURL is the /readyz URL for an admin listener address; a listener on
// every interface is probed on loopback.
func readyzURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", fmt.Errorf("SIGNER_ADMIN_ADDR %q must be host:port", addr)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
