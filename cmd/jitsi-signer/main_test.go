package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitsi-signer/jitsi-signer/pkg/config"
)

const testSecret = "0123456789abcdef0123456789abcdef-cmd-secret"

// configVars are every variable the service reads; tests clear them all.
var configVars = config.Variables()

func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, k := range configVars {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// lockedBuffer collects the service's log while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type running struct {
	api, admin, keys string
	logs             *lockedBuffer
	cancel           context.CancelCauseFunc
	done             chan error
}

// start runs the service in-process on ephemeral loopback ports and waits
// for its "listening" log line.
func start(t *testing.T, env map[string]string) *running {
	t.Helper()
	env["SIGNER_ADDR"] = "127.0.0.1:0"
	env["SIGNER_ADMIN_ADDR"] = "127.0.0.1:0"
	setEnv(t, env)
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &running{logs: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, nil, io.Discard, r.logs) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(r.logs.String()))
		for sc.Scan() {
			var line struct{ Msg, APIAddr, AdminAddr string }
			var raw map[string]any
			if json.Unmarshal(sc.Bytes(), &raw) == nil && raw["msg"] == "listening" {
				line.APIAddr, _ = raw["api_addr"].(string)
				line.AdminAddr, _ = raw["admin_addr"].(string)
				r.api, r.admin = "http://"+line.APIAddr, "http://"+line.AdminAddr
				r.keys = r.api
				if k, _ := raw["keys_addr"].(string); k != "api" && k != "" {
					r.keys = "http://" + k
				}
				t.Cleanup(func() {
					cancel(errInterrupted)
					<-r.done
				})
				return r
			}
		}
		select {
		case err := <-r.done:
			t.Fatalf("run ended before listening: %v\n%s", err, r.logs)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no listening line in:\n%s", r.logs)
	return nil
}

func post(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/v1/links", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestServeZeroConfiguration(t *testing.T) {
	r := start(t, map[string]string{})
	resp, body := post(t, r.api, `{"room":"Daily Standup","user":{"name":"Ann"}}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"signed":false`) ||
		!strings.Contains(string(body), `https://meet.jit.si/daily%20standup#userInfo.displayName=\"Ann\"`) {
		t.Fatalf("unsigned link = %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(r.logs.String(), "links are UNSIGNED") {
		t.Errorf("no start-up warning about unsigned links:\n%s", r.logs)
	}
	if code := get(t, r.admin+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d; the unsigned fallback is ready", code)
	}
}

func TestServeSignedAndDrainOnSIGTERM(t *testing.T) {
	r := start(t, map[string]string{
		"JITSI_APP_ID": "app", "JITSI_API_KEY": testSecret, "JITSI_BASE_URL": "https://meet.example.com",
		"SIGNER_SHUTDOWN_DELAY": "700ms",
	})
	resp, body := post(t, r.api, `{"room":"r1","user":{"name":"Ann"},"role":"moderator"}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"signed":true`) {
		t.Fatalf("signed link = %d %s", resp.StatusCode, body)
	}
	if strings.Contains(r.logs.String(), testSecret) {
		t.Fatal("the log holds the secret")
	}
	if code := get(t, r.admin+"/metrics"); code != 200 {
		t.Fatalf("/metrics = %d", code)
	}

	r.cancel(errTerminated)
	// Readiness turns 503 at once while the API keeps serving.
	deadline := time.Now().Add(2 * time.Second)
	for get(t, r.admin+"/readyz") != 503 {
		if time.Now().After(deadline) {
			t.Fatal("/readyz never turned 503 after SIGTERM")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if resp, body := post(t, r.api, `{"room":"r2","user":{"name":"Bob"}}`); resp.StatusCode != 200 {
		t.Fatalf("API during the drain delay = %d %s; want 200", resp.StatusCode, body)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("run() = %v; want a clean exit", err)
		}
		r.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("run() did not return after the drain delay")
	}
	if _, err := http.Get(r.api + "/v1/links"); err == nil {
		t.Error("the API still answers after shutdown")
	}
}

func TestBadConfigurationNamesEveryVariable(t *testing.T) {
	setEnv(t, map[string]string{
		"JITSI_API_KEY": "short", "JITSI_TOKEN_TTL": "forever", "SIGNER_ADDR": "0.0.0.0:0",
		"SIGNER_CALLERS_FILE": "/nonexistent/callers.yaml",
	})
	var stderr bytes.Buffer
	err := run(context.Background(), nil, io.Discard, &stderr)
	var ce *configError
	if !errors.As(err, &ce) {
		t.Fatalf("run() = %v; want a configuration error", err)
	}
	if code := exitCode(err, &stderr); code != 2 {
		t.Errorf("exit code = %d; want 2", code)
	}
	for _, want := range []string{"JITSI_API_KEY holds a secret of 5 bytes", "JITSI_APP_ID is required", `JITSI_TOKEN_TTL "forever"`,
		"SIGNER_CALLERS_FILE callers file /nonexistent/callers.yaml cannot be read"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "listening") {
		t.Error("a listener was opened with a bad configuration")
	}
}

func TestCheckConfig(t *testing.T) {
	setEnv(t, map[string]string{"JITSI_APP_ID": "app", "JITSI_API_KEY": testSecret})
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-check-config"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "configuration OK: HS256-signed links") || strings.Contains(got, testSecret) {
		t.Errorf("-check-config printed %q", got)
	}
}

func TestHelpListsSettings(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"-help"}, io.Discard, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, k := range configVars {
		if !strings.Contains(stderr.String(), k) {
			t.Errorf("-help does not list %s", k)
		}
	}
}

func TestHTTPServerLimits(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("server limits = header %s, read %s, write %s, idle %s, max header %d; want all set",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}

func TestOversizedHeadersRefused(t *testing.T) {
	r := start(t, map[string]string{})
	req, _ := http.NewRequest(http.MethodPost, r.api+"/v1/links", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers = %d; want 431", resp.StatusCode)
	}
}
