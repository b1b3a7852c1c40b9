package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitsi-signer/jitsi-signer/pkg/config"

	"github.com/jitsi-signer/jitsi-signer/pkg/keys/keystest"
)

// setting is one environment variable the service reads.
type setting struct {
	name, def string
}

// settings returns the service's settings as config.Usage lists them, by
// name.
func settings(t *testing.T) map[string]setting {
	t.Helper()
	var b bytes.Buffer
	if err := config.Usage(&b); err != nil {
		t.Fatalf("config.Usage: %v", err)
	}
	out := map[string]setting{}
	defCol, meaningCol := -1, -1
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "VARIABLE ") {
			defCol, meaningCol = strings.Index(line, "DEFAULT"), strings.Index(line, "MEANING")
			continue
		}
		if defCol < 0 || strings.TrimSpace(line) == "" {
			continue
		}
		if len(line) < meaningCol {
			t.Fatalf("config.Usage line %q is shorter than its columns", line)
		}
		name := strings.TrimSpace(line[:defCol])
		out[name] = setting{name: name, def: strings.TrimSpace(line[defCol:meaningCol])}
	}
	if len(out) < 10 || out["SIGNER_ADDR"].def == "" {
		t.Fatalf("config.Usage lists %d settings (SIGNER_ADDR default %q); the table format changed:\n%s", len(out), out["SIGNER_ADDR"].def, b.String())
	}
	return out
}

// defaultPort returns the port of an address setting's default.
func defaultPort(t *testing.T, name string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(settings(t)[name].def)
	if err != nil {
		t.Fatalf("default of %s: %v", name, err)
	}
	return port
}

// goRuntimeVariables are read by the Go runtime, not by the service.
var goRuntimeVariables = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GOGC": true, "GODEBUG": true}

// exampleKey is the API key the tests put the digest of in the example
// overlay's callers file.
const exampleKey = "deploy-test-booking-api-key"

// service is the real jitsi-signer binary, built and running on loopback
// with the example overlay's callers file, after a few requests have made
// every labelled metric appear.
type service struct {
	api, admin string
	metrics    string
	cmd        *exec.Cmd
	stderr     *lockedBuffer
	// exited receives Wait's result once the process has ended.
	exited chan error
}

var (
	svcOnce sync.Once
	svc     *service
	svcErr  error
)

// TestMain stops the service the tests started.
func TestMain(m *testing.M) {
	code := m.Run()
	if svc != nil {
		_ = svc.cmd.Process.Kill()
		<-svc.exited
	}
	os.Exit(code)
}

// runningService starts the service on first use and returns it.
func runningService(t *testing.T) *service {
	t.Helper()
	svcOnce.Do(func() { svc, svcErr = startService() })
	if svcErr != nil {
		t.Fatalf("starting jitsi-signer: %v", svcErr)
	}
	return svc
}

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

func startService() (*service, error) {
	dir, err := os.MkdirTemp("", "jitsi-signer-deploy-test")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "jitsi-signer")
	build := exec.Command("go", "build", "-o", bin, "github.com/jitsi-signer/jitsi-signer/cmd/jitsi-signer")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	callers, err := exampleCallersFileWithKey()
	if err != nil {
		return nil, err
	}
	callersPath := filepath.Join(dir, "callers.yaml")
	if err := os.WriteFile(callersPath, []byte(callers), 0o600); err != nil {
		return nil, err
	}
	// RS256 with a key folder: the mode that has every metric, the key
	// metrics included.
	keysDir := filepath.Join(dir, "keys")
	if err := keystest.WriteFolder(keysDir, "k1"); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"SIGNER_ADDR=127.0.0.1:0",
		"SIGNER_ADMIN_ADDR=127.0.0.1:0",
		"JITSI_BASE_URL=https://meet.example.com",
		"JITSI_APP_ID=example_app_id",
		"JITSI_SIGNING_ALG=RS256",
		"JITSI_KEYS_DIR=" + keysDir,
		"SIGNER_CALLERS_FILE=" + callersPath,
	}
	pr, pw := io.Pipe()
	stderr := &lockedBuffer{}
	cmd.Stderr = io.MultiWriter(pw, stderr)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	s := &service{cmd: cmd, stderr: stderr, exited: exited}
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct {
				Msg   string `json:"msg"`
				API   string `json:"api_addr"`
				Admin string `json:"admin_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addrs <- [2]string{line.API, line.Admin}
			}
		}
		// Keep reading, so that the service never blocks on its log.
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { err := cmd.Wait(); pw.Close(); exited <- err }()
	select {
	case a := <-addrs:
		s.api, s.admin = "http://"+a[0], "http://"+a[1]
	case err := <-exited:
		return nil, fmt.Errorf("exited before listening (%v); log:\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("no \"listening\" line within 30s; log:\n%s", stderr.String())
	}
	// Label combinations appear once used: issue a link, have one denied
	// by policy, one refused for its key and one for its method.
	reqs := []struct {
		method, auth, body string
		want               int
	}{
		{"POST", exampleKey, `{"room":"booking-1","user":{"name":"Ann"},"role":"moderator"}`, 200},
		{"POST", exampleKey, `{"room":"chat-1","user":{"name":"Ann"}}`, 403},
		{"POST", "", `{"room":"booking-1","user":{"name":"Ann"}}`, 401},
		{"GET", exampleKey, ``, 405},
	}
	for _, r := range reqs {
		req, _ := http.NewRequestWithContext(context.Background(), r.method, s.api+"/v1/links", strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		if r.auth != "" {
			req.Header.Set("Authorization", "Bearer "+r.auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			return s, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != r.want {
			return s, fmt.Errorf("%s /v1/links %s = %d %s; want %d", r.method, r.body, resp.StatusCode, body, r.want)
		}
	}
	code, body, err := get(s.admin + "/metrics")
	if err != nil || code != 200 {
		return s, fmt.Errorf("GET /metrics = %d, %v", code, err)
	}
	s.metrics = body
	return s, nil
}

// client bounds every request the tests make to the service.
var client = &http.Client{Timeout: 10 * time.Second}

func get(url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// exposedSeries returns the names of the samples in the service's /metrics
// output, as a query names them: histograms appear as _bucket, _sum and
// _count, never under their bare family name.
func exposedSeries(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, line := range strings.Split(runningService(t).metrics, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		out[name] = true
	}
	return out
}

func TestServiceExposesItsMetrics(t *testing.T) {
	got := exposedSeries(t)
	for _, name := range []string{
		"jitsi_signer_links_issued_total",
		"jitsi_signer_http_request_duration_seconds_bucket",
		"process_cpu_seconds_total",
	} {
		if !got[name] {
			t.Errorf("/metrics has no %s; the service did not serve the requests the tests rely on", name)
		}
	}
	if got["jitsi_signer_http_request_duration_seconds"] {
		t.Errorf("/metrics lists the bare histogram name as a sample; the parser is wrong")
	}
}
