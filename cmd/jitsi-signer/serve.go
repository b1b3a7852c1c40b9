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
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/config"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
	"github.com/jitsi-signer/jitsi-signer/pkg/keys"
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
	// keys is the RSA key set, nil with an HMAC secret or unsigned links.
	keys *keys.KeySet
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
		d := cfg.CallerDefaults()
		if d.MaxTTL == 0 {
			// JITSI_TOKEN_MAX_TTL is itself invalid and reported; check
			// the policies against the widest bound.
			d.MaxTTL = jitsi.MaxAllowedTTL
		}
		s, err := caller.LoadFile(cfg.CallersFile, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("SIGNER_CALLERS_FILE %w", err))
		}
		svc.callers = s
	}
	if cfg.KeysDir != "" && jitsi.IsRSAAlgorithm(cfg.SigningAlg) {
		ks, err := keys.Load(keys.Options{Dir: cfg.KeysDir, Algorithm: cfg.SigningAlg, KIDPrefix: cfg.KIDPrefix(),
			// A Jitsi server whose clock is behind accepts a token for up
			// to the clock skew past its exp: keep the key published as long.
			MaxTTL: cfg.TokenMaxTTL + cfg.ClockSkew})
		if err != nil {
			errs = append(errs, prefixLines("JITSI_KEYS_DIR ", err))
		}
		svc.keys = ks
	}
	if len(errs) > 0 {
		return nil, &configError{err: errors.Join(errs...)}
	}
	if svc.keys != nil {
		svc.signer = svc.keys
	} else if cfg.Signed() {
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

// prefixLines puts prefix before every line of err, so that each problem
// of a multi-line error names its variable.
func prefixLines(prefix string, err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return errors.New(strings.Join(lines, "\n"))
}

// summary describes the configuration in one line, without secrets.
func (s *service) summary() string {
	mode := "UNSIGNED links"
	if s.signer != nil {
		iss, aud := s.cfg.AppID, s.cfg.Audience
		if s.cfg.Mode == jitsi.ModeJaaS {
			iss, aud = "chat", "jitsi"
		}
		mode = fmt.Sprintf("%s-signed links (iss %q, aud %q)", s.signer.Algorithm(), iss, aud)
	}
	if s.keys != nil {
		snap := s.keys.Snapshot()
		mode += fmt.Sprintf(" with %d keys from %s (active %q)", len(snap.Keys), s.cfg.KeysDir, snap.ActiveKID)
	}
	if s.cfg.Mode == jitsi.ModeJaaS {
		mode = "8x8 JaaS " + mode
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
	switch {
	case s.keys != nil:
		ks := s.keys
		metrics.WatchKeys(func() server.KeyState {
			snap := ks.Snapshot()
			return server.KeyState{KID: snap.ActiveKID, Alg: ks.Algorithm(), ActiveSince: snap.ActiveModTime, Published: len(snap.Keys)}
		})
	case s.signer != nil:
		state := server.KeyState{KID: s.signer.KeyID(), Alg: s.signer.Algorithm()}
		metrics.WatchKeys(func() server.KeyState { return state })
	}
	issuerCfg := cfg.IssuerConfig()
	issuer, err := jitsi.NewIssuer(issuerCfg, signer)
	if err != nil {
		return &configError{err: err}
	}
	// Background work (reloads) runs until serve returns, through the drain.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	reloads := newBroadcast(bg, syscall.SIGHUP)

	var callers *caller.Store
	if cfg.CallersFile != "" {
		reloader := caller.NewReloader(cfg.CallersFile, cfg.CallerDefaults(), log, metrics.ObserveCallersReload)
		if callers, err = reloader.Load(); err != nil {
			return &configError{err: fmt.Errorf("SIGNER_CALLERS_FILE %w", err)}
		}
		go reloader.Run(bg, cfg.ReloadInterval, reloads.subscribe())
	}
	health := server.NewHealth(issuer.Signed())
	apiOpts := server.Options{
		Issuer: issuer, Callers: callers, Anonymous: caller.NewAnonymous(cfg.CallerDefaults()),
		Metrics: metrics, Logger: log,
	}
	if s.keys != nil && cfg.KeysAddr == "" {
		apiOpts.Keys = s.keys
	}
	apiHandler := server.NewAPI(apiOpts)
	adminHandler := server.NewAdmin(health, reg)
	if cfg.Pprof {
		adminHandler = withProfiler(adminHandler)
	}

	apiLn, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("SIGNER_ADDR %s: %w", cfg.Addr, err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("SIGNER_ADMIN_ADDR %s: %w", cfg.AdminAddr, err)
	}
	var keysLn net.Listener
	if s.keys != nil && cfg.KeysAddr != "" {
		keysLn, err = net.Listen("tcp", cfg.KeysAddr)
		if err != nil {
			apiLn.Close()
			adminLn.Close()
			return fmt.Errorf("SIGNER_KEYS_ADDR %s: %w", cfg.KeysAddr, err)
		}
	}
	if s.keys != nil {
		go s.watchKeys(bg, reloads.subscribe(), log, metrics)
	}

	if !issuer.Signed() {
		log.Warn("links are UNSIGNED: they only pre-fill the display name and grant nothing; " +
			"set JITSI_APP_ID and JITSI_API_KEY (or JITSI_API_KEY_FILE, at least 32 bytes) to the values Prosody uses to sign them")
	}
	if callers == nil {
		log.Warn("no SIGNER_CALLERS_FILE: every request is accepted as caller \"anonymous\"")
	}
	keysAddr := "api"
	if keysLn != nil {
		keysAddr = keysLn.Addr().String()
	}
	log.Info("listening",
		"api_addr", apiLn.Addr().String(),
		"admin_addr", adminLn.Addr().String(),
		"keys_addr", keysAddr,
		"kid", kidOf(signer),
		"base_url", cfg.BaseURL,
		"signed", issuer.Signed(),
		"alg", algOf(signer),
		"version", version)

	apiSrv := newHTTPServer(apiHandler, log)
	adminSrv := newHTTPServer(adminHandler, log)
	if cfg.Pprof {
		// CPU profiles and traces stream for as long as they are asked to.
		adminSrv.WriteTimeout = 0
	}
	serveErr := make(chan error, 3)
	go func() { serveErr <- apiSrv.Serve(apiLn) }()
	go func() { serveErr <- adminSrv.Serve(adminLn) }()
	var keysSrv *http.Server
	if keysLn != nil {
		keysSrv = newHTTPServer(server.NewKeys(s.keys, metrics, log), log)
		go func() { serveErr <- keysSrv.Serve(keysLn) }()
	}

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
	var keysErr error
	if keysSrv != nil {
		keysErr = keysSrv.Shutdown(shutdownCtx)
	}
	if err := errors.Join(<-apiDone, adminErr, keysErr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	log.Info("stopped")
	return nil
}

// broadcast delivers each arrival of a signal to every subscriber, without
// blocking: a subscriber busy reloading gets one pending notice.
type broadcast struct {
	mu   sync.Mutex
	subs []chan struct{}
}

func newBroadcast(ctx context.Context, sig os.Signal) *broadcast {
	b := &broadcast{}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				b.mu.Lock()
				for _, s := range b.subs {
					select {
					case s <- struct{}{}:
					default:
					}
				}
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *broadcast) subscribe() <-chan struct{} {
	c := make(chan struct{}, 1)
	b.mu.Lock()
	b.subs = append(b.subs, c)
	b.mu.Unlock()
	return c
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

// watchKeys reloads the key folder when it changes on disk and on SIGHUP.
// A failed reload is logged and counted; the keys in use stay, and so does
// readiness.
func (s *service) watchKeys(ctx context.Context, hup <-chan struct{}, log *slog.Logger, metrics *server.Metrics) {
	s.keys.Watch(ctx, s.cfg.KeysPollInterval, hup, func(err error) {
		metrics.KeyReloaded(err)
		if err != nil {
			log.Error("signing keys not reloaded; the keys in use stay", "keys_dir", s.cfg.KeysDir, "error", err.Error())
			return
		}
		snap := s.keys.Snapshot()
		log.Info("signing keys reloaded", "keys_dir", s.cfg.KeysDir, "kid", snap.ActiveKID, "published", len(snap.Keys))
	})
}

func kidOf(s jitsi.Signer) string {
	if s == nil {
		return ""
	}
	return s.KeyID()
}

func algOf(s jitsi.Signer) string {
	if s == nil {
		return "none"
	}
	return s.Algorithm()
}

// withProfiler serves Go's profiler at /debug/pprof/ beside h.
func withProfiler(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}
