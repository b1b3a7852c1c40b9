// Package server is jitsi-signer's HTTP transport: the API router with the
// signed-link endpoint, the admin router with health and metrics, caller
// authentication, problem+json errors, metrics and the audit log.
package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

// Options wires the API.
type Options struct {
	Issuer *jitsi.Issuer
	// Callers authenticates requests; when it is nil every request is
	// Anonymous's.
	Callers   *caller.Store
	Anonymous *caller.Caller
	Metrics   *Metrics
	Logger    *slog.Logger
	// Now is the clock for rate limits; nil means time.Now.
	Now func() time.Time
	// Keys, when set, are served on the API listener at /keys/ and
	// /.well-known/jwks.json. Leave it nil to serve them elsewhere with
	// NewKeys.
	Keys PublicKeys
}

// api serves the signed-link endpoint.
type api struct {
	issuer    *jitsi.Issuer
	callers   *caller.Store
	anonymous *caller.Caller
	now       func() time.Time
	metrics   *Metrics
	log       *slog.Logger
	// alg labels issued links; "none" for unsigned ones.
	alg    string
	signed string
}

// NewAPI returns the API router: POST /v1/links.
func NewAPI(o Options) http.Handler {
	a := &api{
		issuer:    o.Issuer,
		callers:   o.Callers,
		anonymous: o.Anonymous,
		now:       o.Now,
		metrics:   o.Metrics,
		log:       o.Logger,
		alg:       "none",
		signed:    "false",
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.callers == nil && a.anonymous == nil {
		a.anonymous = caller.NewAnonymous(caller.Defaults{MaxTTL: o.Issuer.MaxTTL()})
	}
	if s := o.Issuer.Signer(); s != nil {
		a.alg = s.Algorithm()
		a.signed = "true"
	}
	r := chi.NewRouter()
	// instrument wraps recoverer, so that a panic's 500 is counted too.
	r.Use(a.instrument, a.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, &apiError{status: http.StatusNotFound, code: CodeNotFound, detail: "no such endpoint; links are made by POST /v1/links"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
			detail: fmt.Sprintf("method %s is not allowed here", sanitizeMethod(r.Method))})
	})
	r.Post("/v1/links", a.createLink)
	if o.Keys != nil {
		a.mountKeys(r, o.Keys)
	}
	return r
}

// NewKeys returns a router that serves only the public keys, for a
// listener of its own that Prosody can reach while the API stays private.
func NewKeys(ks PublicKeys, m *Metrics, log *slog.Logger) http.Handler {
	a := &api{metrics: m, log: log}
	r := chi.NewRouter()
	// instrument wraps recoverer, so that a panic's 500 is counted too.
	r.Use(a.instrument, a.recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, &apiError{status: http.StatusNotFound, code: CodeNotFound, detail: "no such endpoint; keys are served under /keys/ and at " + JWKSPath})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
			detail: fmt.Sprintf("method %s is not allowed here", sanitizeMethod(r.Method))})
	})
	a.mountKeys(r, ks)
	return r
}

// Health tracks readiness for /readyz.
type Health struct {
	ready  atomic.Bool
	signed bool
}

// NewHealth returns a Health that is ready.
func NewHealth(signed bool) *Health {
	h := &Health{signed: signed}
	h.ready.Store(true)
	return h
}

// SetReady turns readiness on or off; shutdown turns it off first.
func (h *Health) SetReady(ready bool) { h.ready.Store(ready) }

// NewAdmin returns the admin router: /healthz, /readyz and /metrics.
func NewAdmin(h *Health, gatherer prometheus.Gatherer) http.Handler {
	r := chi.NewRouter()
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
	})
	r.Get("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !h.ready.Load() {
			writeJSON(w, http.StatusServiceUnavailable, []byte(`{"status":"shutting_down"}`))
			return
		}
		if h.signed {
			writeJSON(w, http.StatusOK, []byte(`{"status":"ready","signed":true}`))
			return
		}
		writeJSON(w, http.StatusOK, []byte(`{"status":"ready","signed":false}`))
	})
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return r
}

// recoverer turns a panic into a 500 problem and a log line, never a
// dropped connection with a stack trace on stderr.
func (a *api) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error("panic serving request", "route", routePattern(r), "panic_type", fmt.Sprintf("%T", v))
				writeProblem(w, &apiError{status: http.StatusInternalServerError, code: CodeInternal, detail: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// instrument counts requests by route pattern, method and code.
func (a *api) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := routePattern(r)
		a.metrics.request(route, sanitizeMethod(r.Method), statusLabel(sw.status)).Inc()
		a.metrics.duration(route).Observe(time.Since(start).Seconds())
	})
}

// routePattern is the chi route that matched, or "unmatched": never the raw
// path, which would make label values unbounded.
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

// sanitizeMethod bounds the method label and message to the methods HTTP
// defines.
func sanitizeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "other"
}

func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 400:
		return "400"
	case 401:
		return "401"
	case 422:
		return "422"
	}
	return fmt.Sprint(code)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Header values shared by every response; net/http never modifies them.
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
)

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["Cache-Control"] = headerNoStore
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
