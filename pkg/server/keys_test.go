package server

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
	"github.com/jitsi-signer/jitsi-signer/pkg/keys"
	"github.com/jitsi-signer/jitsi-signer/pkg/keys/keystest"
)

var testRSAKeys = keystest.Keys

func writeKey(t *testing.T, dir, name string, k *rsa.PrivateKey) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), keystest.PKCS1(k), 0o600); err != nil {
		t.Fatal(err)
	}
}

type rsaAPI struct {
	srv     *httptest.Server
	ks      *keys.KeySet
	dir     string
	reg     *prometheus.Registry
	metrics *Metrics
	logs    *syncBuffer
}

// newRSAAPI serves the real router over HTTP on 127.0.0.1, signing RS256
// with a key folder holding k1 (active) and k2 (next).
func newRSAAPI(t *testing.T) *rsaAPI {
	t.Helper()
	k := testRSAKeys()
	dir := t.TempDir()
	writeKey(t, dir, "k1.pem", k[0])
	writeKey(t, dir, "k2.pem", k[1])
	if err := os.WriteFile(filepath.Join(dir, "active"), []byte("k1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Load(keys.Options{Dir: dir, Algorithm: "RS256", MaxTTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, BuildInfo{Version: "test"})
	m.WatchKeys(func() KeyState {
		s := ks.Snapshot()
		return KeyState{KID: s.ActiveKID, Alg: "RS256", ActiveSince: s.ActiveModTime, Published: len(s.Keys)}
	})
	is, err := jitsi.NewIssuer(jitsi.Config{BaseURL: "https://meet.example.com", AppID: "my-app", Audience: "jitsi",
		Subject: "meet.example.com", DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour, Now: func() time.Time { return testNow }},
		m.InstrumentSigner(ks))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	h := NewAPI(Options{Issuer: is, Metrics: m, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Keys: ks})
	srv := httptest.NewServer(validated(t, h))
	t.Cleanup(srv.Close)
	return &rsaAPI{srv: srv, ks: ks, dir: dir, reg: reg, metrics: m, logs: logs}
}

func (a *rsaAPI) link(t *testing.T, body string) string {
	t.Helper()
	resp, err := http.Post(a.srv.URL+"/v1/links", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out linkResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Token == "" {
		t.Fatalf("POST /v1/links = %d, %v", resp.StatusCode, err)
	}
	return out.Token
}

func fetch(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// prosodyVerify does what Prosody's token plugin does with a token when
// asap_key_server is set: read kid from the header, fetch
// <server>/<hex(sha256(kid))>.pem, and verify the token with that PEM.
func prosodyVerify(t *testing.T, keyServer, token string) jwt.MapClaims {
	t.Helper()
	header, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(header, &h); err != nil || h.Kid == "" {
		t.Fatalf("header %s has no kid: %v", header, err)
	}
	sum := sha256.Sum256([]byte(h.Kid))
	resp, body := fetch(t, keyServer+"/"+hex.EncodeToString(sum[:])+".pem")
	if resp.StatusCode != 200 {
		t.Fatalf("GET key for kid %q = %d %s", h.Kid, resp.StatusCode, body)
	}
	pub, err := jwt.ParseRSAPublicKeyFromPEM(body)
	if err != nil {
		t.Fatalf("the served key is not a PEM public key: %v\n%s", err, body)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("my-app"), jwt.WithAudience("jitsi"),
		jwt.WithTimeFunc(func() time.Time { return testNow })); err != nil {
		t.Fatalf("the token does not verify with the served key: %v", err)
	}
	return claims
}

// TestProsodyFetchesKeyAndVerifies plays Prosody against the running
// service, before and after a rotation.
func TestProsodyFetchesKeyAndVerifies(t *testing.T) {
	a := newRSAAPI(t)
	body := `{"room":"r","user":{"name":"Ann"},"role":"moderator","features":{"recording":true,"livestreaming":false},"lobby_bypass":true}`
	claims := prosodyVerify(t, a.srv.URL+"/keys", a.link(t, body))
	ctx := claims["context"].(map[string]any)
	features, _ := ctx["features"].(map[string]any)
	user := ctx["user"].(map[string]any)
	if features["recording"] != "true" || features["livestreaming"] != "false" || len(features) != 2 || user["lobby_bypass"] != true {
		t.Errorf("claims = %v", claims)
	}
	if _, ok := user["security_bypass"]; ok {
		t.Errorf("security_bypass written without being asked for: %v", user)
	}

	// Promote k2: new tokens carry k2, whose key was published before.
	if err := os.WriteFile(filepath.Join(a.dir, "active"), []byte("k2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.ks.Reload(); err != nil {
		t.Fatal(err)
	}
	token := a.link(t, `{"room":"r","user":{"name":"Bob"}}`)
	prosodyVerify(t, a.srv.URL+"/keys", token)
	for kid, want := range map[string]float64{"k1": 1, "k2": 1} {
		if got := testutil.ToFloat64(a.metrics.tokensSigned.WithLabelValues(kid)); got != want {
			t.Errorf("tokens signed{kid=%s} = %v; want %v", kid, got, want)
		}
	}
}

func TestKeyEndpoints(t *testing.T) {
	a := newRSAAPI(t)
	k := testRSAKeys()
	sum := sha256.Sum256([]byte("k1"))
	k1URL := a.srv.URL + "/keys/" + hex.EncodeToString(sum[:]) + ".pem"
	resp, body := fetch(t, k1URL)
	wantPEM, _ := jitsi.PublicKeyPEM(&k[0].PublicKey)
	if resp.StatusCode != 200 || string(body) != string(wantPEM) {
		t.Fatalf("GET k1 = %d %s; want %s", resp.StatusCode, body, wantPEM)
	}
	for h, want := range map[string]string{"Content-Type": "application/x-pem-file", "Cache-Control": "public, max-age=3600"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("GET k1 %s = %q; want %q", h, got, want)
		}
	}

	head, err := http.Head(k1URL)
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != 200 || head.ContentLength != int64(len(wantPEM)) {
		t.Errorf("HEAD k1 = %d, length %d; want 200, %d", head.StatusCode, head.ContentLength, len(wantPEM))
	}

	tests := []struct {
		name string
		path string
	}{
		{"unknown kid", "/keys/" + strings.Repeat("0", 64) + ".pem"},
		{"uppercase hex", "/keys/" + strings.ToUpper(hex.EncodeToString(sum[:])) + ".pem"},
		{"kid itself", "/keys/k1.pem"},
		{"no suffix", "/keys/" + hex.EncodeToString(sum[:])},
		{"traversal", "/keys/..%2factive"},
		{"folder", "/keys/"},
	}
	for _, tt := range tests {
		resp, body := fetch(t, a.srv.URL+tt.path)
		if resp.StatusCode != 404 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: GET %s = %d (Cache-Control %q) %s; want an uncached 404", tt.name, tt.path, resp.StatusCode, resp.Header.Get("Cache-Control"), body)
		}
	}

	resp, body = fetch(t, a.srv.URL+JWKSPath)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &set) != nil || len(set.Keys) != 2 ||
		resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("GET jwks = %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if set.Keys[0]["kid"] != "k1" || set.Keys[1]["kid"] != "k2" || set.Keys[0]["alg"] != "RS256" || set.Keys[0]["use"] != "sig" {
		t.Errorf("jwks = %s", body)
	}

	// Nothing served or logged holds private material.
	var all strings.Builder
	for _, u := range []string{k1URL, a.srv.URL + JWKSPath} {
		_, b := fetch(t, u)
		all.Write(b)
	}
	all.WriteString(a.logs.String())
	mfs, _ := a.reg.Gather()
	for _, mf := range mfs {
		all.WriteString(mf.String())
	}
	for _, key := range k {
		private := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		d := base64.RawURLEncoding.EncodeToString(key.D.Bytes())
		for _, secret := range []string{string(private), d, key.D.String(), "PRIVATE KEY"} {
			if strings.Contains(all.String(), secret) {
				t.Errorf("served output, logs or metrics contain private material %.20q", secret)
			}
		}
	}
}

func TestKeysOnTheirOwnListener(t *testing.T) {
	a := newRSAAPI(t)
	h := NewKeys(a.ks, a.metrics, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	srv := httptest.NewServer(h)
	defer srv.Close()
	prosodyVerify(t, srv.URL+"/keys", a.link(t, `{"room":"r","user":{"name":"Ann"}}`))
	if resp, _ := fetch(t, srv.URL+"/v1/links"); resp.StatusCode != 404 {
		t.Errorf("the keys listener serves /v1/links: %d", resp.StatusCode)
	}
}

func TestKeyMetrics(t *testing.T) {
	a := newRSAAPI(t)
	a.link(t, `{"room":"r","user":{"name":"Ann"}}`)
	a.metrics.KeyReloaded(nil)
	a.metrics.KeyReloaded(os.ErrNotExist)
	want := `
# HELP jitsi_signer_key_reloads_total Reloads of the signing-key folder, by outcome (success or failure); a failure keeps the keys in use.
# TYPE jitsi_signer_key_reloads_total counter
jitsi_signer_key_reloads_total{outcome="failure"} 1
jitsi_signer_key_reloads_total{outcome="success"} 1
# HELP jitsi_signer_published_keys Public keys served at /keys/ and in the JWKS, retired ones included.
# TYPE jitsi_signer_published_keys gauge
jitsi_signer_published_keys 2
# HELP jitsi_signer_signing_key_info Always 1; labels name the active signing key and its algorithm.
# TYPE jitsi_signer_signing_key_info gauge
jitsi_signer_signing_key_info{alg="RS256",kid="k1"} 1
# HELP jitsi_signer_tokens_signed_total Tokens signed, by key id (bounded by the keys in the key folder).
# TYPE jitsi_signer_tokens_signed_total counter
jitsi_signer_tokens_signed_total{kid="k1"} 1
`
	if err := testutil.GatherAndCompare(a.reg, strings.NewReader(want), "jitsi_signer_key_reloads_total",
		"jitsi_signer_published_keys", "jitsi_signer_signing_key_info", "jitsi_signer_tokens_signed_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(a.reg, "jitsi_signer_signing_key_age_seconds"); err != nil || n != 1 {
		t.Errorf("signing key age series = %d, %v; want 1", n, err)
	}
	problems, err := testutil.GatherAndLint(a.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}
