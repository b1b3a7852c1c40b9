// Command jitsi-signer serves signed Jitsi Meet links to internal backends.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Set at build time with -ldflags "-X main.version=… -X main.revision=…".
var (
	version  = "dev"
	revision = "unknown"
)

// errTerminated is the cause of a SIGTERM shutdown, which drains before the
// listeners close; errInterrupted, of a SIGINT one, which does not.
var (
	errTerminated  = errors.New("SIGTERM received")
	errInterrupted = errors.New("SIGINT received")
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	go func() {
		s := <-signals
		// A second signal gets the default behaviour: exit at once.
		signal.Reset(syscall.SIGTERM, os.Interrupt)
		if s == syscall.SIGTERM {
			cancel(errTerminated)
		} else {
			cancel(errInterrupted)
		}
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err and turns it into the process exit status: 0 for
// success, 2 for bad usage or configuration, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	var ce *configError
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, ce.Error())
		return 2
	}
	fmt.Fprintf(stderr, "jitsi-signer: %v\n", err)
	return 1
}
