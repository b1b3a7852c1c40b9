// Command jitsi-signer-harness proves jitsi-signer under load and faults:
// it builds the real binary, starts it on loopback, and runs scenarios
// against it: sustained load (errors, latency, memory), SIGTERM in the
// middle of load, callers-file rotation under load, and broken
// configurations.
//
//	go run ./cmd/jitsi-signer-harness -duration 30s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("jitsi-signer-harness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenarios := fs.String("scenarios", "load,sigterm,reload,bad-config", "comma-separated scenarios to run: load, sigterm, reload, bad-config, compare-hs256, compare-rs256")
	rounds := fs.Int("rounds", 3, "rounds of the compare scenarios; each round runs every server once")
	duration := fs.Duration("duration", 20*time.Second, "how long each load, reload and compare scenario drives load")
	workers := fs.Int("workers", 16, "concurrent connections")
	bin := fs.String("bin", "", "jitsi-signer binary to test; empty builds one")
	race := fs.Bool("race", false, "build the binary with the race detector")
	serverCPU := fs.String("server-cpu", "", "pin the server to these CPUs with taskset (for example 0)")
	loadCPU := fs.String("load-cpu", "", "pin the harness itself, the load generator, to these CPUs with taskset (for example 1)")
	cpuProfile := fs.String("cpuprofile", "", "save a CPU profile of the server during the load scenario to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *loadCPU != "" {
		// -a pins every thread the harness has, and new ones inherit it.
		out, err := exec.Command("taskset", "-a", "-p", "-c", *loadCPU, strconv.Itoa(os.Getpid())).CombinedOutput()
		if err != nil {
			fmt.Fprintf(stderr, "taskset -load-cpu %s: %v\n%s", *loadCPU, err, out)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "jitsi-signer-harness-")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin == "" {
		if *bin, err = buildBinary(context.Background(), dir, *race); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	h := newHarness(*bin, dir, *workers, *duration, stdout)
	h.serverCPU = *serverCPU
	h.cpuProfile = *cpuProfile
	h.rounds = max(1, *rounds)
	if strings.Contains(*scenarios, "compare") {
		if h.refBin, err = buildReference(context.Background(), dir); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "jitsi-signer harness: %d workers, %s per load scenario, %s %s/%s, %d CPUs, server CPUs %q, load CPUs %q\n",
		*workers, *duration, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *serverCPU, *loadCPU)
	failed := false
	for _, name := range strings.Split(*scenarios, ",") {
		r, ok := h.run(strings.TrimSpace(name))
		if !ok {
			fmt.Fprintf(stderr, "unknown scenario %q\n", name)
			return 2
		}
		report(stdout, r)
		failed = failed || len(r.failures) > 0
	}
	if failed {
		fmt.Fprintln(stdout, "FAIL")
		return 1
	}
	fmt.Fprintln(stdout, "PASS")
	return 0
}

// run runs one scenario by name.
func (h *harness) run(name string) (result, bool) {
	switch name {
	case "load":
		return h.scenarioLoad(), true
	case "sigterm":
		return h.scenarioSIGTERM(), true
	case "reload":
		return h.scenarioReload(), true
	case "bad-config":
		return h.scenarioBadConfig(), true
	case "compare-hs256":
		return h.scenarioCompare("HS256"), true
	case "compare-rs256":
		return h.scenarioCompare("RS256"), true
	}
	return result{}, false
}

func report(w io.Writer, r result) {
	verdict := "ok"
	if len(r.failures) > 0 {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\n== %s: %s\n", r.name, verdict)
	if r.stats.requests > 0 {
		fmt.Fprintf(w, "   %s\n", r.stats)
	}
	for _, n := range r.notes {
		fmt.Fprintf(w, "   %s\n", n)
	}
	for _, f := range r.failures {
		fmt.Fprintf(w, "   FAIL: %s\n", f)
	}
}
