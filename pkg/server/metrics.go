package server

import (
	"sync"
	"sync/atomic"
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
	keyReloads      *prometheus.CounterVec
	// children caches the labelled series the request path uses, so that a
	// request does not hash its label values again.
	children     sync.Map
	tokensSigned *prometheus.CounterVec
	keys         *keyCollector
}

// KeyState describes the signing keys for the key metrics.
type KeyState struct {
	// KID and Alg are the active key's; KID is "" for an HMAC secret
	// without a configured key id.
	KID string
	Alg string
	// ActiveSince is the modification time of the active key's file; zero
	// when unknown (an HMAC secret), and the age is then not reported.
	ActiveSince time.Time
	// Published is how many public keys are served.
	Published int
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
	m.keyReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jitsi_signer_key_reloads_total",
		Help: "Reloads of the signing-key folder, by outcome (success or failure); a failure keeps the keys in use.",
	}, []string{"outcome"})
	m.keyReloads.WithLabelValues("success")
	m.keyReloads.WithLabelValues("failure")
	m.tokensSigned = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jitsi_signer_tokens_signed_total",
		Help: "Tokens signed, by key id (bounded by the keys in the key folder).",
	}, []string{"kid"})
	m.keys = &keyCollector{
		info: prometheus.NewDesc("jitsi_signer_signing_key_info",
			"Always 1; labels name the active signing key and its algorithm.", []string{"kid", "alg"}, nil),
		age: prometheus.NewDesc("jitsi_signer_signing_key_age_seconds",
			"Seconds since the active key's file was last modified.", nil, nil),
		published: prometheus.NewDesc("jitsi_signer_published_keys",
			"Public keys served at /keys/ and in the JWKS, retired ones included.", nil, nil),
		now: time.Now,
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jitsi_signer_build_info",
		Help: "Always 1; labels describe the running binary.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(build.Version, build.Revision, runtime.Version()).Set(1)

	reg.MustRegister(m.linksIssued, m.rejected, m.authFailures, m.signingDuration,
		m.httpRequests, m.httpDuration, m.callersReloads, m.callers, m.keyReloads, m.tokensSigned, m.keys, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// child returns the series of vec with values, from the cache.
func (m *Metrics) child(vec *prometheus.MetricVec, values ...string) prometheus.Metric {
	type key struct {
		vec    *prometheus.MetricVec
		values [4]string
	}
	k := key{vec: vec}
	copy(k.values[:], values)
	if c, ok := m.children.Load(k); ok {
		return c.(prometheus.Metric)
	}
	c, err := vec.GetMetricWithLabelValues(values...)
	if err != nil {
		panic(err)
	}
	m.children.Store(k, c)
	return c
}

func (m *Metrics) issued(caller, role, alg, signed string) prometheus.Counter {
	return m.child(m.linksIssued.MetricVec, caller, role, alg, signed).(prometheus.Counter)
}

func (m *Metrics) request(route, method, code string) prometheus.Counter {
	return m.child(m.httpRequests.MetricVec, route, method, code).(prometheus.Counter)
}

func (m *Metrics) duration(route string) prometheus.Observer {
	return m.child(m.httpDuration.MetricVec, route).(prometheus.Observer)
}

func (m *Metrics) signedBy(kid string) prometheus.Counter {
	return m.child(m.tokensSigned.MetricVec, kid).(prometheus.Counter)
}

// ObserveCallersReload records a load of the callers file and the number of
// callers in force after it.
func (m *Metrics) ObserveCallersReload(outcome string, callers int) {
	m.callersReloads.WithLabelValues(outcome).Inc()
	m.callers.Set(float64(callers))
}

// WatchKeys makes the key metrics report state, which is called at each
// scrape.
func (m *Metrics) WatchKeys(state func() KeyState) { m.keys.state.Store(&state) }

// KeyReloaded counts a reload of the key folder by outcome.
func (m *Metrics) KeyReloaded(err error) {
	if err != nil {
		m.keyReloads.WithLabelValues("failure").Inc()
		return
	}
	m.keyReloads.WithLabelValues("success").Inc()
}

// keyCollector reports the signing-key gauges from a KeyState taken at
// scrape time, so that a reload needs no bookkeeping.
type keyCollector struct {
	info, age, published *prometheus.Desc
	state                atomic.Pointer[func() KeyState]
	now                  func() time.Time
}

func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.info
	ch <- c.age
	ch <- c.published
}

func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.state.Load()
	if f == nil {
		return
	}
	s := (*f)()
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, s.KID, s.Alg)
	if !s.ActiveSince.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, c.now().Sub(s.ActiveSince).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.published, prometheus.GaugeValue, float64(s.Published))
}

// InstrumentSigner returns a Signer that records each signature's duration
// in jitsi_signer_signing_duration_seconds and counts it by key id in
// jitsi_signer_tokens_signed_total.
func (m *Metrics) InstrumentSigner(s jitsi.Signer) jitsi.Signer {
	return &timedSigner{Signer: s, observe: m.signingDuration.WithLabelValues(s.Algorithm()), metrics: m}
}

type timedSigner struct {
	jitsi.Signer
	observe prometheus.Observer
	metrics *Metrics
}

func (t *timedSigner) Sign(claims []byte) (string, error) {
	token, _, err := t.SignKeyed(claims)
	return token, err
}

// SignKeyed implements jitsi.KeyedSigner, so that the key that signed is
// counted even while keys rotate.
func (t *timedSigner) SignKeyed(claims []byte) (string, string, error) {
	start := time.Now()
	var token, kid string
	var err error
	if ks, ok := t.Signer.(jitsi.KeyedSigner); ok {
		token, kid, err = ks.SignKeyed(claims)
	} else {
		token, err = t.Signer.Sign(claims)
		kid = t.Signer.KeyID()
	}
	t.observe.Observe(time.Since(start).Seconds())
	if err == nil {
		t.metrics.signedBy(kid).Inc()
	}
	return token, kid, err
}
