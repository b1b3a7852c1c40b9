package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/jitsi-signer/jitsi-signer/pkg/keys/keystest"
)

// contender is one server in a comparison.
type contender struct {
	name string
	bin  string
	env  []string
	args []string
	key  string
	p    *process
	outs []outcome
	took time.Duration
	cpu  time.Duration
}

// scenarioCompare measures jitsi-signer against the reference servers with
// the same request mix, alternating them (A B C A B C …) over rounds so that
// drift in the machine's load affects all alike. It reports ratios; it
// fails only on errors, never on throughput, which depends on the machine.
func (h *harness) scenarioCompare(alg string) result {
	r := result{name: "compare-" + strings.ToLower(alg)}
	var contenders []*contender
	switch alg {
	case "HS256":
		contenders = []*contender{
			{name: "jitsi-signer", bin: h.bin, key: h.key,
				env: h.env(h.writeCallers("callers-compare.yaml", openPolicy), "SIGNER_LOG_LEVEL=info")},
			{name: "golang-jwt", bin: h.refBin, args: []string{"-mode", "golang-jwt"},
				env: []string{"JITSI_API_KEY=" + h.secret, "JITSI_APP_ID=harness"}},
			{name: "no-signing", bin: h.refBin, args: []string{"-mode", "none"}},
		}
	case "RS256":
		keyDir := filepath.Join(h.dir, "keys")
		if err := keystest.WriteFolder(keyDir, "k1"); err != nil {
			r.failf("RSA key: %v", err)
			return r
		}
		env := h.env(h.writeCallers("callers-compare.yaml", openPolicy), "SIGNER_LOG_LEVEL=info",
			"JITSI_SIGNING_ALG=RS256", "JITSI_KEYS_DIR="+keyDir)
		env = slicesDelete(env, "JITSI_API_KEY=")
		contenders = []*contender{
			{name: "jitsi-signer", bin: h.bin, key: h.key, env: env},
			{name: "crypto/rsa", bin: h.refBin, args: []string{"-mode", "rsa"},
				env: []string{"RSA_KEY_FILE=" + filepath.Join(keyDir, "k1.pem"), "JITSI_APP_ID=harness"}},
		}
	default:
		r.failf("no comparison for %s", alg)
		return r
	}
	for _, c := range contenders {
		p, err := startProcess(c.bin, c.env, h.serverCPU, c.args...)
		if err != nil {
			r.failf("start %s: %v", c.name, err)
			return r
		}
		defer p.kill()
		c.p = p
	}
	client := newClient(h.workers)
	round := h.duration / time.Duration(h.rounds*len(contenders))
	for _, c := range contenders {
		warm, cancel := context.WithTimeout(context.Background(), min(round/2, time.Second))
		load(warm, client, c.p.api, c.key, h.workers, 0, validRequest)
		cancel()
	}
	for i := 0; i < h.rounds; i++ {
		for _, c := range contenders {
			cpu0, _ := c.p.cpuTime()
			ctx, cancel := context.WithTimeout(context.Background(), round)
			start := time.Now()
			c.outs = append(c.outs, load(ctx, client, c.p.api, c.key, h.workers, 0, validRequest)...)
			c.took += time.Since(start)
			cancel()
			cpu1, _ := c.p.cpuTime()
			c.cpu += cpu1 - cpu0
		}
	}
	base := map[string]float64{}
	all := map[string]stats{}
	for _, c := range contenders {
		s := summarise(c.outs, c.took)
		all[c.name] = s
		base[c.name] = s.rps()
		if s.non2xx+s.transport > 0 {
			r.failf("%s: %d of %d requests failed; first: %s", c.name, s.non2xx+s.transport, s.requests,
				firstFailure(c.outs, func(o outcome) bool { return o.status != 200 }))
		}
	}
	r.notef("%d rounds of %s per server, %d connections, server CPUs %q", h.rounds, round.Round(time.Millisecond), h.workers, h.serverCPU)
	header := fmt.Sprintf("%-13s %10s %9s %9s %10s %7s", "server", "req/s", "p50", "p99", "CPU/req", "errors")
	for _, c := range contenders[1:] {
		header += fmt.Sprintf(" %14s", "×"+c.name)
	}
	r.notef("%s", header)
	for _, c := range contenders {
		s := all[c.name]
		line := fmt.Sprintf("%-13s %10.0f %9s %9s %10s %7d", c.name, s.rps(), s.p50.Round(time.Microsecond),
			s.p99.Round(time.Microsecond), perRequest(c.cpu, s.ok), s.non2xx+s.transport)
		for _, ref := range contenders[1:] {
			line += fmt.Sprintf(" %14.2f", s.rps()/max(base[ref.name], 1e-9))
		}
		r.notef("%s", line)
	}
	r.stats = all["jitsi-signer"]
	return r
}

func perRequest(cpu time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return (cpu / time.Duration(n)).Round(100 * time.Nanosecond).String()
}

func slicesDelete(env []string, prefix string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}
