package server

import (
	"time"

	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the service's Prometheus metrics. Labels are bounded: caller
// names come from the callers file, routes from the router, and rooms, users
// and tokens never become labels.
type Metrics struct {
	linksIssued     *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	authFailures    *prometheus.CounterVec
	signingDuration *prometheus.HistogramVec
	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	callersReloads  *prometheus.CounterVec
	callers         prometheus.Gauge
}

// BuildInfo describes the running binary.
type BuildInfo struct {
	Version  string
	Revision string
}

// NewMetrics creates the metrics and registers them, with the Go and
// process collectors, on reg.
func NewMetrics(reg prometheus.Registerer, build BuildInfo) *Metrics {
	m := &Metrics{
		linksIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jitsi_signer_links_issued_total",
			Help: "Meeting links issued, by caller, role, signing algorithm and whether the link is signed.",
		}, []string{"caller", "role", "alg", "signed"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jitsi_signer_requests_rejected_total",
			Help: "Link requests refused, by caller and reason (the problem code).",
		}, []string{"caller", "reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jitsi_signer_auth_failures_total",
			Help: "Requests whose API key was missing, malformed or unknown, by reason. The presented key is never recorded.",
		}, []string{"reason"}),
		signingDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jitsi_signer_signing_duration_seconds",
			Help:    "Time to build and sign one token, by algorithm.",
			Buckets: prometheus.ExponentialBuckets(2e-6, 2.5, 12),
		}, []string{"alg"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jitsi_signer_http_requests_total",
			Help: "HTTP requests served on the API listener, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jitsi_signer_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request on the API listener, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2.5, 12),
		}, []string{"route"}),
		callersReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jitsi_signer_callers_reloads_total",
			Help: "Loads of the callers file, by outcome (success or failure); a failure keeps the previous callers in force.",
		}, []string{"outcome"}),
		callers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jitsi_signer_callers",
			Help: "Callers in force.",
		}),
	}
	for _, outcome := range []string{"success", "failure"} {
		m.callersReloads.WithLabelValues(outcome)
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jitsi_signer_build_info",
		Help: "Always 1; labels describe the running binary.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(build.Version, build.Revision, runtime.Version()).Set(1)

	reg.MustRegister(m.linksIssued, m.rejected, m.authFailures, m.signingDuration,
		m.httpRequests, m.httpDuration, m.callersReloads, m.callers, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveCallersReload records a load of the callers file and the number of
// callers in force after it.
func (m *Metrics) ObserveCallersReload(outcome string, callers int) {
	m.callersReloads.WithLabelValues(outcome).Inc()
	m.callers.Set(float64(callers))
}

// InstrumentSigner returns a Signer that records each signature's duration
// in jitsi_signer_signing_duration_seconds.
func (m *Metrics) InstrumentSigner(s jitsi.Signer) jitsi.Signer {
	return &timedSigner{Signer: s, observe: m.signingDuration.WithLabelValues(s.Algorithm())}
}

type timedSigner struct {
	jitsi.Signer
	observe prometheus.Observer
}

func (t *timedSigner) Sign(claims []byte) (string, error) {
	start := time.Now()
	token, err := t.Signer.Sign(claims)
	t.observe.Observe(time.Since(start).Seconds())
	return token, err
}
