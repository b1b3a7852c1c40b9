package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestScenariosShort runs every scenario briefly against the real binary,
// built with the race detector when the tests are. It asserts on errors,
// exit codes and invariants, never on throughput or latency.
func TestScenariosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin, err := buildBinary(context.Background(), dir, raceEnabled)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(bin, dir, 4, 2*time.Second, os.Stdout)
	for _, name := range []string{"load", "sigterm", "reload", "bad-config"} {
		t.Run(name, func(t *testing.T) {
			r, ok := h.run(name)
			if !ok {
				t.Fatalf("no scenario %q", name)
			}
			report(os.Stdout, r)
			for _, f := range r.failures {
				t.Error(f)
			}
		})
	}
}

func TestUnknownScenario(t *testing.T) {
	if code := run([]string{"-bin", "/bin/true", "-scenarios", "nonsense"}, os.Stdout, os.Stderr); code != 2 {
		t.Errorf("run(-scenarios nonsense) = %d; want 2", code)
	}
}
