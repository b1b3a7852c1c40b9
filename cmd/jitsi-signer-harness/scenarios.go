package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
)

// harness runs scenarios against a built jitsi-signer binary.
type harness struct {
	bin      string
	refBin   string
	rounds   int
	dir      string
	workers  int
	duration time.Duration
	// serverCPU and loadCPU pin the server (taskset -c) and are reported;
	// empty leaves scheduling to the kernel.
	serverCPU string
	out       io.Writer
	// cpuProfile, when set, is where the load scenario saves a CPU profile
	// of the server taken during the run.
	cpuProfile string
	secret     string
	key        string
}

// result is one scenario's verdict.
type result struct {
	name     string
	stats    stats
	notes    []string
	failures []string
}

func (r *result) notef(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}
func (r *result) failf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func newHarness(bin, dir string, workers int, duration time.Duration, out io.Writer) *harness {
	return &harness{bin: bin, dir: dir, workers: workers, duration: duration, out: out, rounds: 3,
		secret: randomString(48), key: randomString(32)}
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// openPolicy lets the load caller sign anything, without a rate limit.
const openPolicy = `{roles: [moderator, participant], rooms: ["*"], tenants: ["*"], rate_limit: {requests_per_second: 0}}`

func (h *harness) writeCallers(name, policy string) string {
	path := filepath.Join(h.dir, name)
	data := "callers:\n  - name: loader\n    key_sha256: " + caller.HashKey([]byte(h.key)) + "\n    policy: " + policy + "\n"
	if err := writeAtomically(path, []byte(data)); err != nil {
		panic(err)
	}
	return path
}

// writeAtomically replaces path the way Kubernetes updates a mounted file:
// the new content appears whole, never half written.
func writeAtomically(path string, data []byte) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (h *harness) env(callersFile string, extra ...string) []string {
	return append([]string{
		"JITSI_BASE_URL=https://meet.example.com",
		"JITSI_APP_ID=harness",
		"JITSI_API_KEY=" + h.secret,
		"SIGNER_ADDR=127.0.0.1:0",
		"SIGNER_ADMIN_ADDR=127.0.0.1:0",
		"SIGNER_CALLERS_FILE=" + callersFile,
		"SIGNER_SHUTDOWN_DELAY=0s",
	}, extra...)
}

// validRequest is the request mix: varied rooms, tenants, users and roles,
// every one of them acceptable. Three rooms in four are booking ids as
// scheduling systems generate them; the fourth is a name with spaces and
// accents, which takes the full Unicode derivation.
func validRequest(w, i int) ([]byte, int) {
	role := "participant"
	if i%4 == 0 {
		role = "moderator"
	}
	room := fmt.Sprintf("Booking-%d-%d-a1b2c3", w, i%64)
	if i%4 == 3 {
		room = fmt.Sprintf("Salle Réunion %d-%d", w, i%64)
	}
	return []byte(fmt.Sprintf(`{"room":%q,"tenant":"acme","user":{"id":"%d","name":"Zoë Example %d","email":"user%d@example.com"},"role":%q,"ttl_seconds":3600}`,
		room, i, i, i, role)), 0
}

// scenarioLoad drives sustained load and watches the server's memory.
func (h *harness) scenarioLoad() result {
	r := result{name: "load"}
	p, err := startProcess(h.bin, h.env(h.writeCallers("callers-load.yaml", openPolicy), "SIGNER_LOG_LEVEL=info",
		"SIGNER_PPROF="+strconv.FormatBool(h.cpuProfile != "")), h.serverCPU)
	if err != nil {
		r.failf("start: %v", err)
		return r
	}
	defer p.kill()
	client := newClient(h.workers)
	if h.cpuProfile != "" {
		profiled := make(chan error, 1)
		defer func() {
			if err := <-profiled; err != nil {
				r.failf("profile: %v", err)
			} else {
				r.notef("CPU profile of the server: %s", h.cpuProfile)
			}
		}()
		go func() { profiled <- saveProfile(p.admin, h.cpuProfile, h.duration) }()
	}

	warm, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	load(warm, client, p.api, h.key, h.workers, 0, validRequest)
	cancel()

	var samples []int64
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), h.duration)
	defer cancel()
	go func() {
		t := time.NewTicker(h.duration / 12)
		defer t.Stop()
		for {
			if rss, err := p.rss(); err == nil {
				mu.Lock()
				samples = append(samples, rss)
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	cpu0, _ := p.cpuTime()
	start := time.Now()
	outs := load(ctx, client, p.api, h.key, h.workers, 0, validRequest)
	r.stats = summarise(outs, time.Since(start))
	cpu1, _ := p.cpuTime()
	if r.stats.non2xx+r.stats.transport > 0 {
		r.failf("%d of %d valid requests failed; first: %s", r.stats.non2xx+r.stats.transport, r.stats.requests,
			firstFailure(outs, func(o outcome) bool { return o.status != http.StatusOK }))
	}
	if r.stats.ok > 0 {
		r.notef("server CPU per request: %s", ((cpu1 - cpu0) / time.Duration(r.stats.ok)).Round(100*time.Nanosecond))
	}
	h.stop(p, &r)
	mu.Lock()
	defer mu.Unlock()
	if len(samples) >= 6 {
		third := len(samples) / 3
		early, late := maxOf(samples[:third]), maxOf(samples[len(samples)-third:])
		r.notef("resident memory: %.1f MiB early, %.1f MiB late (%d samples)", mib(early), mib(late), len(samples))
		if late > early+early/2+16<<20 {
			r.failf("resident memory grew from %.1f MiB to %.1f MiB under steady load", mib(early), mib(late))
		}
	}
	return r
}

// scenarioSIGTERM sends SIGTERM in the middle of load: readiness must turn
// 503 at once, the API must keep serving through the drain delay, every
// request the server answered must be a 200, and the process must exit 0
// within its bound.
func (h *harness) scenarioSIGTERM() result {
	r := result{name: "sigterm"}
	const delay, timeout = 1500 * time.Millisecond, 10 * time.Second
	p, err := startProcess(h.bin, h.env(h.writeCallers("callers-sigterm.yaml", openPolicy),
		"SIGNER_SHUTDOWN_DELAY="+delay.String(), "SIGNER_SHUTDOWN_TIMEOUT="+timeout.String()), h.serverCPU)
	if err != nil {
		r.failf("start: %v", err)
		return r
	}
	defer p.kill()
	client := newClient(h.workers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var outs []outcome
	loaded := make(chan struct{})
	start := time.Now()
	go func() {
		outs = load(ctx, client, p.api, h.key, h.workers, 0, validRequest)
		close(loaded)
	}()
	time.Sleep(min(h.duration/2, time.Second))

	sent := time.Now()
	if err := p.signal(syscall.SIGTERM); err != nil {
		r.failf("SIGTERM: %v", err)
		return r
	}
	var notReady time.Duration
	for time.Since(sent) < time.Second {
		resp, err := http.Get(p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				notReady = time.Since(sent)
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if notReady == 0 {
		r.failf("/readyz did not report 503 within 1s of SIGTERM")
	} else {
		r.notef("/readyz reported 503 %s after SIGTERM", notReady.Round(time.Millisecond))
	}
	code, err := p.wait(delay + timeout + 5*time.Second)
	exited := time.Since(sent)
	cancel()
	<-loaded
	r.stats = summarise(outs, time.Since(start))
	switch {
	case err != nil:
		r.failf("exit: %v", err)
	case code != 0:
		r.failf("exit code %d; want 0\n%s", code, tail(p.log.String(), 20))
	default:
		r.notef("exited 0 %s after SIGTERM (drain delay %s)", exited.Round(time.Millisecond), delay)
	}
	drainEnd := sent.Add(delay - 100*time.Millisecond)
	var duringDrain, refusedEarly int
	for _, o := range outs {
		switch {
		case o.status != 0 && o.status != http.StatusOK:
			r.failf("the server answered %d during shutdown: %s", o.status, o.body)
			return r
		case o.status == http.StatusOK && o.start.After(sent):
			duringDrain++
		case o.status == 0 && o.start.Before(drainEnd):
			refusedEarly++
		}
	}
	if refusedEarly > 0 {
		r.failf("%d requests failed before the drain delay ended; first: %s", refusedEarly,
			firstFailure(outs, func(o outcome) bool { return o.status == 0 && o.start.Before(drainEnd) }))
	}
	if duringDrain == 0 {
		r.failf("no request was served after SIGTERM: the API stopped before the drain delay")
	}
	r.notef("%d requests served between SIGTERM and the listener closing; none answered with an error", duringDrain)
	return r
}

// Request kinds for the reload scenario: policy A lets the caller have
// participant links to a-* rooms, policy B moderator links to b-* rooms.
const (
	kindAParticipant = iota // allowed by A only
	kindBModerator          // allowed by B only
	kindAModerator          // allowed by neither: a mix of A and B
	kindBParticipant        // allowed by neither: a mix of A and B
)

const (
	policyA = `{roles: [participant], rooms: ["a-*"], rate_limit: {requests_per_second: 0}}`
	policyB = `{roles: [moderator], rooms: ["b-*"], rate_limit: {requests_per_second: 0}}`
)

var reloadKinds = [...]struct{ room, role string }{
	kindAParticipant: {"a-1", "participant"},
	kindBModerator:   {"b-1", "moderator"},
	kindAModerator:   {"a-1", "moderator"},
	kindBParticipant: {"b-1", "participant"},
}

func reloadRequest(w, i int) ([]byte, int) {
	kind := (w + i) % len(reloadKinds)
	k := reloadKinds[kind]
	return []byte(fmt.Sprintf(`{"room":%q,"user":{"name":"Reload %d"},"role":%q}`, k.room, i, k.role)), kind
}

// scenarioReload rotates the callers file under load (valid A, valid B,
// invalid, …, by rename and by SIGHUP): no request may fail because of a
// reload, and the policy in force must always be A or B, never a mix.
func (h *harness) scenarioReload() result {
	r := result{name: "reload"}
	path := h.writeCallers("callers-reload.yaml", policyA)
	p, err := startProcess(h.bin, h.env(path, "SIGNER_RELOAD_INTERVAL=100ms"), h.serverCPU)
	if err != nil {
		r.failf("start: %v", err)
		return r
	}
	defer p.kill()
	client := newClient(h.workers)
	ctx, cancel := context.WithTimeout(context.Background(), h.duration)
	defer cancel()
	rotations := make(chan int, 1)
	go func() {
		n := 0
		steps := []string{policyB, "", policyA, "", policyB, policyA}
		for ctx.Err() == nil {
			step := steps[n%len(steps)]
			if step == "" {
				_ = writeAtomically(path, []byte("callers: [ {name: loader, key_sha256: nonsense"))
			} else {
				h.writeCallers("callers-reload.yaml", step)
			}
			if n%3 == 2 {
				_ = p.signal(syscall.SIGHUP)
			}
			n++
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
		rotations <- n
	}()
	start := time.Now()
	outs := load(ctx, client, p.api, h.key, h.workers, 0, reloadRequest)
	r.stats = summarise(outs, time.Since(start))
	n := <-rotations
	allowed := map[int]int{}
	for _, o := range outs {
		switch {
		case o.status == http.StatusOK && (o.kind == kindAModerator || o.kind == kindBParticipant):
			r.failf("a request allowed by neither policy was signed: the policy in force mixed A and B")
			return r
		case o.status == http.StatusOK:
			allowed[o.kind]++
		case o.status != http.StatusForbidden:
			r.failf("a request failed during reloads: %s", firstFailure([]outcome{o}, func(outcome) bool { return true }))
			return r
		}
	}
	if allowed[kindAParticipant] == 0 || allowed[kindBModerator] == 0 {
		r.failf("policy A signed %d and policy B %d requests; both should have been in force at times", allowed[kindAParticipant], allowed[kindBModerator])
	}
	success, failure := reloadCounts(p.admin)
	r.notef("%d file rotations; reloads: %d successful, %d refused; signed %d under A, %d under B, never a mix",
		n, success, failure, allowed[kindAParticipant], allowed[kindBModerator])
	if failure == 0 || success < 2 {
		r.failf("reload metrics show %d successes and %d failures; the rotation had both", success, failure)
	}
	h.stop(p, &r)
	return r
}

// stop ends a server with SIGTERM and checks that it exits 0 and that the
// race detector, when built in, found nothing.
func (h *harness) stop(p *process, r *result) {
	if err := p.signal(syscall.SIGTERM); err != nil {
		r.failf("SIGTERM: %v", err)
		return
	}
	code, err := p.wait(30 * time.Second)
	if err != nil || code != 0 {
		r.failf("exit code %d (%v); want 0\n%s", code, err, tail(p.log.String(), 20))
	}
	if strings.Contains(p.log.String(), "WARNING: DATA RACE") {
		r.failf("the race detector reported a data race:\n%s", p.log.String())
	}
}

var reloadMetric = regexp.MustCompile(`(?m)^jitsi_signer_callers_reloads_total\{outcome="(success|failure)"\} (\d+)`)

func reloadCounts(admin string) (success, failure int) {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, m := range reloadMetric.FindAllStringSubmatch(string(body), -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1] == "success" {
			success = n
		} else {
			failure = n
		}
	}
	return success, failure
}

// scenarioBadConfig starts the binary with each kind of broken
// configuration: it must exit 2 with one message naming every bad variable,
// and never listen.
func (h *harness) scenarioBadConfig() result {
	r := result{name: "bad-config"}
	badCallers := filepath.Join(h.dir, "callers-bad.yaml")
	_ = os.WriteFile(badCallers, []byte("callers:\n  - name: booking\n    key_sha256: "+caller.HashKey([]byte("k"))+"\n    policy: {roles: [admin], rooms: []}\n"), 0o600)
	cases := []struct {
		name string
		env  []string
		want []string
	}{
		{"several bad variables", []string{"JITSI_API_KEY=short", "JITSI_TOKEN_TTL=forever", "JITSI_CLOCK_SKEW=1h", "SIGNER_LOG_LEVEL=loud"},
			[]string{"JITSI_API_KEY", "JITSI_APP_ID", "JITSI_TOKEN_TTL", "JITSI_CLOCK_SKEW", "SIGNER_LOG_LEVEL"}},
		{"anonymous on a public address", []string{"SIGNER_ADDR=0.0.0.0:0"}, []string{"SIGNER_CALLERS_FILE is not set"}},
		{"missing secret file", []string{"JITSI_APP_ID=a", "JITSI_API_KEY_FILE=" + filepath.Join(h.dir, "absent")}, []string{"JITSI_API_KEY_FILE"}},
		{"invalid callers policy", []string{"SIGNER_CALLERS_FILE=" + badCallers},
			[]string{`caller "booking": policy.roles holds "admin"`, `caller "booking": policy.rooms must list`}},
		{"bad base URL and addresses", []string{"JITSI_BASE_URL=meet.example.com/x", "SIGNER_ADDR=nowhere", "SIGNER_ADMIN_ADDR=example.com:1"},
			[]string{"JITSI_BASE_URL", "SIGNER_ADDR", "SIGNER_ADMIN_ADDR"}},
	}
	for _, c := range cases {
		env := append([]string{"SIGNER_ADDR=127.0.0.1:0", "SIGNER_ADMIN_ADDR=127.0.0.1:0"}, c.env...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := execCommand(ctx, h.bin, env)
		out, err := cmd.CombinedOutput()
		cancel()
		code := cmd.ProcessState.ExitCode()
		switch {
		case err == nil || code != 2:
			r.failf("%s: exit code %d; want 2\n%s", c.name, code, out)
		case strings.Contains(string(out), `"msg":"listening"`):
			r.failf("%s: a listener was opened:\n%s", c.name, out)
		case strings.Count(string(out), "the configuration is invalid") != 1:
			r.failf("%s: want one message, got:\n%s", c.name, out)
		}
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				r.failf("%s: the message does not name %s:\n%s", c.name, w, out)
			}
		}
	}
	r.notef("%d broken configurations: each exited 2 with one message naming every problem, none listened", len(cases))
	return r
}

func maxOf(xs []int64) int64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// saveProfile fetches a CPU profile of the server covering most of d.
func saveProfile(admin, path string, d time.Duration) error {
	secs := max(1, int(d/time.Second)-1)
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
