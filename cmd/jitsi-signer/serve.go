package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/config"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
	"github.com/jitsi-signer/jitsi-signer/pkg/server"
)

// errUsage is returned after a usage message has been printed.
var errUsage = errors.New("usage")

// configError lists every configuration problem.
type configError struct{ err error }

func (e *configError) Error() string {
	var b strings.Builder
	b.WriteString("jitsi-signer: the configuration is invalid:")
	for _, line := range strings.Split(e.err.Error(), "\n") {
		b.WriteString("\n  - ")
		b.WriteString(line)
	}
	return b.String()
}

func (e *configError) Unwrap() error { return e.err }

// HTTP server limits. Slow or oversized clients are cut off rather than
// allowed to hold connections.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 15 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
)

// runServe parses the service's flags and runs the service until ctx ends.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("jitsi-signer serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	checkConfig := fs.Bool("check-config", false, "validate the configuration, print a summary and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: jitsi-signer [serve] [flags]\n       jitsi-signer <command> [flags]\n\nServes signed Jitsi Meet links.\n\n")
		fmt.Fprint(stderr, commandsHelp)
		fmt.Fprintf(stderr, "\nFlags of serve:\n")
		fs.PrintDefaults()
		fmt.Fprintln(stderr)
		_ = config.Usage(stderr)
	}
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "jitsi-signer: unknown command or argument %q (see jitsi-signer -h)\n", fs.Arg(0))
		return errUsage
	}
	if *showVersion {
		fmt.Fprintf(stdout, "jitsi-signer %s (%s)\n", version, revision)
		return nil
	}

	svc, err := load()
	if err != nil {
		return err
	}
	if *checkConfig {
		fmt.Fprintln(stdout, svc.summary())
		return nil
	}
	return svc.serve(ctx, stderr)
}

// service is a loaded, validated configuration ready to serve.
type service struct {
	cfg     *config.Config
	callers *caller.Set
	signer  jitsi.Signer
}

// load reads the configuration and everything it points at, and reports
// every problem at once.
func load() (*service, error) {
	cfg, cfgErr := config.Load()
	var errs []error
	if cfgErr != nil {
		errs = append(errs, cfgErr)
	}
	svc := &service{cfg: cfg}
	if cfg.CallersFile != "" {
		s, err := caller.LoadFile(cfg.CallersFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("SIGNER_CALLERS_FILE %w", err))
		}
		svc.callers = s
	}
	if len(errs) > 0 {
		return nil, &configError{err: errors.Join(errs...)}
	}
	if cfg.Signed() {
		s, err := jitsi.NewHMACSigner(cfg.SigningAlg, cfg.Secret, cfg.KeyID)
		if err != nil {
			return nil, &configError{err: err}
		}
		svc.signer = s
	}
	if _, err := jitsi.NewIssuer(cfg.IssuerConfig(), svc.signer); err != nil {
		return nil, &configError{err: err}
	}
	return svc, nil
}

// summary describes the configuration in one line, without secrets.
func (s *service) summary() string {
	mode := "UNSIGNED links"
	if s.signer != nil {
		mode = fmt.Sprintf("%s-signed links (iss %q, aud %q)", s.signer.Algorithm(), s.cfg.AppID, s.cfg.Audience)
	}
	callers := "anonymous callers (no SIGNER_CALLERS_FILE)"
	if s.callers != nil {
		callers = fmt.Sprintf("%d callers from %s", s.callers.Len(), s.cfg.CallersFile)
	}
	return fmt.Sprintf("configuration OK: %s to %s; %s; API on %s, admin on %s",
		mode, s.cfg.BaseURL, callers, s.cfg.Addr, s.cfg.AdminAddr)
}

// serve runs both listeners until ctx ends, then shuts down: readiness
// turns 503 first; on SIGTERM the API keeps serving for the drain delay so
// that load balancers stop routing; then in-flight requests finish within
// the shutdown timeout.
func (s *service) serve(ctx context.Context, logOut io.Writer) error {
	cfg := s.cfg
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: cfg.LogLevel}))

	reg := prometheus.NewRegistry()
	metrics := server.NewMetrics(reg, server.BuildInfo{Version: version, Revision: revision})
	var signer jitsi.Signer
	if s.signer != nil {
		signer = metrics.InstrumentSigner(s.signer)
	}
	issuerCfg := cfg.IssuerConfig()
	issuer, err := jitsi.NewIssuer(issuerCfg, signer)
	if err != nil {
		return &configError{err: err}
	}
	var callers *caller.Store
	if s.callers != nil {
		callers = caller.NewStore(s.callers)
	}
	health := server.NewHealth(issuer.Signed())
	apiHandler := server.NewAPI(server.Options{Issuer: issuer, Callers: callers, Metrics: metrics, Logger: log})
	adminHandler := server.NewAdmin(health, reg)

	apiLn, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("SIGNER_ADDR %s: %w", cfg.Addr, err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("SIGNER_ADMIN_ADDR %s: %w", cfg.AdminAddr, err)
	}

	if !issuer.Signed() {
		log.Warn("links are UNSIGNED: they only pre-fill the display name and grant nothing; " +
			"set JITSI_APP_ID and JITSI_API_KEY (or JITSI_API_KEY_FILE, at least 32 bytes) to the values Prosody uses to sign them")
	}
	if callers == nil {
		log.Warn("no SIGNER_CALLERS_FILE: every request is accepted as caller \"anonymous\"")
	}
	log.Info("listening",
		"api_addr", apiLn.Addr().String(),
		"admin_addr", adminLn.Addr().String(),
		"base_url", cfg.BaseURL,
		"signed", issuer.Signed(),
		"alg", algOf(signer),
		"version", version)

	apiSrv := newHTTPServer(apiHandler, log)
	adminSrv := newHTTPServer(adminHandler, log)
	serveErr := make(chan error, 2)
	go func() { serveErr <- apiSrv.Serve(apiLn) }()
	go func() { serveErr <- adminSrv.Serve(adminLn) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = err
	}

	health.SetReady(false)
	if errors.Is(context.Cause(ctx), errTerminated) && cfg.ShutdownDelay > 0 && runErr == nil {
		log.Info("shutting down: draining", "delay", cfg.ShutdownDelay.String())
		select {
		case <-time.After(cfg.ShutdownDelay):
		case err := <-serveErr:
			runErr = err
		}
	}
	log.Info("shutting down: closing listeners", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	apiDone := make(chan error, 1)
	go func() { apiDone <- apiSrv.Shutdown(shutdownCtx) }()
	adminErr := adminSrv.Shutdown(shutdownCtx)
	if err := errors.Join(<-apiDone, adminErr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	log.Info("stopped")
	return nil
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func algOf(s jitsi.Signer) string {
	if s == nil {
		return "none"
	}
	return s.Algorithm()
}
