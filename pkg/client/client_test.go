package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/client"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
	"github.com/jitsi-signer/jitsi-signer/pkg/server"
)

const (
	apiKey = "bk_live_0123456789abcdefghijklmnop"
	secret = "0123456789abcdef0123456789abcdef-client-secret"
)

var testNow = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)

// failingSigner makes the service answer 500.
type failingSigner struct{}

func (failingSigner) Algorithm() string           { return "HS256" }
func (failingSigner) KeyID() string               { return "" }
func (failingSigner) Sign([]byte) (string, error) { return "", errors.New("hsm unavailable") }

// newService returns the real API handler with one caller, signing with
// signer (nil for unsigned links).
func newService(t *testing.T, signer jitsi.Signer) http.Handler {
	t.Helper()
	is, err := jitsi.NewIssuer(jitsi.Config{
		BaseURL: "https://meet.example.com", AppID: "my-app", Audience: "jitsi", Subject: "meet.example.com",
		DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour, ClockSkew: 30 * time.Second,
		Now: func() time.Time { return testNow },
	}, signer)
	if err != nil {
		t.Fatal(err)
	}
	set, err := caller.Parse([]byte(`{"callers":[{"name":"booking","key_sha256":"`+caller.HashKey([]byte(apiKey))+
		`","policy":{"roles":["moderator","participant"],"rooms":["*"],"tenants":["*"],"rate_limit":{"requests_per_second":0},`+
		`"features":{"recording":true},"allow_lobby_bypass":true}}]}`),
		caller.Defaults{MaxTTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return server.NewAPI(server.Options{
		Issuer: is, Callers: caller.NewStore(set),
		Metrics: server.NewMetrics(prometheus.NewRegistry(), server.BuildInfo{}),
		Logger:  slog.New(slog.DiscardHandler),
	})
}

func hmacSigner(t *testing.T) jitsi.Signer {
	t.Helper()
	s, err := jitsi.NewHMACSigner("HS256", []byte(secret), "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waits records the client's waits between retries instead of spending them.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func newClient(t *testing.T, url, key string, opts ...client.Option) (*client.Client, *waits) {
	t.Helper()
	c, err := client.New(url, key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	w := &waits{}
	c.SetSleep(w.sleep)
	return c, w
}

var annInRoom = client.LinkRequest{Room: "Booking 123", User: client.User{ID: "42", Name: "Ann", Email: "ann@example.com"}}

func TestCreateLink(t *testing.T) {
	srv := httptest.NewServer(newService(t, hmacSigner(t)))
	defer srv.Close()
	c, _ := newClient(t, srv.URL, apiKey)
	req := annInRoom
	req.Tenant, req.Role, req.TTL = "Acme", client.RoleModerator, 2*time.Hour
	link, err := c.CreateLink(context.Background(), req)
	if err != nil {
		t.Fatalf("CreateLink() error = %v", err)
	}
	want := client.Link{
		URL: "https://meet.example.com/acme/booking%20123?jwt=" + link.Token, Token: link.Token,
		Room: "booking%20123", Tenant: "acme", Moderator: true, Signed: true, TokenID: link.TokenID,
		ExpiresAt: testNow.Add(2 * time.Hour),
	}
	if *link != want || link.Token == "" || link.TokenID == "" {
		t.Errorf("CreateLink() = %+v; want %+v", *link, want)
	}
}

func TestCreateLinkUnsigned(t *testing.T) {
	srv := httptest.NewServer(newService(t, nil))
	defer srv.Close()
	c, _ := newClient(t, srv.URL+"/", apiKey)
	link, err := c.CreateLink(context.Background(), annInRoom)
	if err != nil {
		t.Fatal(err)
	}
	if link.Signed || link.Token != "" || !link.ExpiresAt.IsZero() || link.URL != `https://meet.example.com/booking%20123#userInfo.displayName="Ann"` {
		t.Errorf("CreateLink() = %+v; want an unsigned link", *link)
	}
}

// TestCreateLinkRefusals covers every error class the service answers
// with; none of them is retried.
func TestCreateLinkRefusals(t *testing.T) {
	tests := []struct {
		name   string
		signer jitsi.Signer
		key    string
		req    client.LinkRequest
		status int
		code   string
		field  string
	}{
		{"unknown key", nil, "not-a-key", annInRoom, 401, "unauthorized", ""},
		{"no key", nil, "", annInRoom, 401, "unauthorized", ""},
		{"no name", nil, apiKey, client.LinkRequest{Room: "r"}, 422, "missing_field", "user.name"},
		{"unjoinable room", nil, apiKey, client.LinkRequest{Room: "Mario's", User: client.User{Name: "A"}}, 422, "room_not_joinable", "room"},
		{"bad role", nil, apiKey, client.LinkRequest{Room: "r", User: client.User{Name: "A"}, Role: "owner"}, 422, "invalid_role", "role"},
		{"ttl above max", nil, apiKey, client.LinkRequest{Room: "r", User: client.User{Name: "A"}, TTL: 48 * time.Hour}, 422, "ttl_out_of_range", "ttl_seconds"},
		{"bad tenant", nil, apiKey, client.LinkRequest{Room: "r", Tenant: "a.b", User: client.User{Name: "A"}}, 422, "invalid_tenant", "tenant"},
		{"body too large", nil, apiKey, client.LinkRequest{Room: strings.Repeat("a", 20000), User: client.User{Name: "A"}}, 413, "body_too_large", ""},
		{"signing fails", failingSigner{}, apiKey, annInRoom, 500, "internal_error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer := tt.signer
			if signer == nil {
				signer = hmacSigner(t)
			}
			var hits atomic.Int32
			h := newService(t, signer)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			c, w := newClient(t, srv.URL, tt.key)
			link, err := c.CreateLink(context.Background(), tt.req)
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("CreateLink() = %v, %v; want a *client.Error", link, err)
			}
			if e.StatusCode != tt.status || e.Code != tt.code || e.Field != tt.field || e.Detail == "" {
				t.Errorf("CreateLink() error = %+v; want status %d, code %s, field %q", e, tt.status, tt.code, tt.field)
			}
			if link != nil {
				t.Errorf("CreateLink() returned a link with its error: %+v", link)
			}
			if n := hits.Load(); n != 1 || len(w.d) != 0 {
				t.Errorf("service called %d times with waits %v; want one call, no retry", n, w.d)
			}
			if strings.Contains(err.Error(), apiKey) {
				t.Errorf("error %q holds the API key", err)
			}
		})
	}
}

// flaky answers with the given statuses first, then lets the real service
// answer.
func flaky(t *testing.T, first []int, retryAfter string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	h := newService(t, hmacSigner(t))
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(hits.Add(1))
		if n <= len(first) {
			status := first[n-1]
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			if status == http.StatusTooManyRequests {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"slow down","code":"rate_limited"}`)
				return
			}
			http.Error(w, "upstream unavailable", status)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestCreateLinkRetries(t *testing.T) {
	tests := []struct {
		name       string
		first      []int
		retryAfter string
		maxRetries int
		wantHits   int32
		wantOK     bool
		wantWaits  []time.Duration // nil: any jittered backoff within bounds
		wantStatus int
	}{
		{"429 honours Retry-After", []int{429}, "3", 2, 2, true, []time.Duration{3 * time.Second}, 0},
		{"503 then 503 then ok", []int{503, 503}, "", 2, 3, true, nil, 0},
		{"503 with Retry-After", []int{503}, "1", 2, 2, true, []time.Duration{time.Second}, 0},
		{"429 beyond the retries", []int{429, 429, 429}, "1", 2, 3, false, []time.Duration{time.Second, time.Second}, 429},
		{"retries off", []int{503}, "", 0, 1, false, []time.Duration{}, 503},
		{"500 is never retried", []int{500}, "", 2, 1, false, []time.Duration{}, 500},
		{"502 is never retried", []int{502}, "", 2, 1, false, []time.Duration{}, 502},
		{"504 is never retried", []int{504}, "", 2, 1, false, []time.Duration{}, 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, hits := flaky(t, tt.first, tt.retryAfter)
			c, w := newClient(t, srv.URL, apiKey, client.WithMaxRetries(tt.maxRetries), client.WithBackoff(10*time.Millisecond, 40*time.Millisecond))
			link, err := c.CreateLink(context.Background(), annInRoom)
			if got := hits.Load(); got != tt.wantHits {
				t.Errorf("service called %d times; want %d", got, tt.wantHits)
			}
			if tt.wantOK {
				if err != nil || !link.Signed {
					t.Fatalf("CreateLink() = %v, %v; want a link after retrying", link, err)
				}
			} else {
				var e *client.Error
				if !errors.As(err, &e) || e.StatusCode != tt.wantStatus {
					t.Fatalf("CreateLink() error = %v; want a *client.Error with status %d", err, tt.wantStatus)
				}
			}
			if tt.wantWaits != nil {
				if fmt.Sprint(w.d) != fmt.Sprint(tt.wantWaits) {
					t.Errorf("waits = %v; want %v", w.d, tt.wantWaits)
				}
				return
			}
			for i, d := range w.d {
				if ceiling := min(10*time.Millisecond<<i, 40*time.Millisecond); d < 0 || d > ceiling {
					t.Errorf("wait %d = %s; want within [0, %s]", i, d, ceiling)
				}
			}
		})
	}
}

func TestCreateLinkRetriesConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, w := newClient(t, "http://"+addr, apiKey, client.WithMaxRetries(3))
	_, err = c.CreateLink(context.Background(), annInRoom)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("CreateLink() error = %v; want connection refused", err)
	}
	if len(w.d) != 3 {
		t.Errorf("waits = %v; want 3 retries", w.d)
	}
	if strings.Contains(err.Error(), apiKey) {
		t.Errorf("error %q holds the API key", err)
	}
}

// TestCreateLinkNoRetryAfterSending: a connection that breaks once the
// request was sent may have issued a link; it is not retried.
func TestCreateLinkNoRetryAfterSending(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.ReadAll(r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c, w := newClient(t, srv.URL, apiKey)
	if _, err := c.CreateLink(context.Background(), annInRoom); err == nil {
		t.Fatal("CreateLink() succeeded on a dropped connection")
	}
	if hits.Load() != 1 || len(w.d) != 0 {
		t.Errorf("service called %d times, waits %v; want one call and no retry", hits.Load(), w.d)
	}
}

func TestCreateLinkContext(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-block:
		}
	}))
	defer srv.Close()
	defer close(block)

	t.Run("cancelled", func(t *testing.T) {
		c, _ := newClient(t, srv.URL, apiKey)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.CreateLink(ctx, annInRoom); !errors.Is(err, context.Canceled) {
			t.Errorf("CreateLink(cancelled) error = %v; want context.Canceled", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		c, w := newClient(t, srv.URL, apiKey, client.WithTimeout(50*time.Millisecond))
		if _, err := c.CreateLink(context.Background(), annInRoom); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CreateLink() error = %v; want context.DeadlineExceeded", err)
		}
		if len(w.d) != 0 {
			t.Errorf("waits = %v; a timed-out request may have been served and is not retried", w.d)
		}
	})
	t.Run("cancelled while waiting to retry", func(t *testing.T) {
		srv, _ := flaky(t, []int{503, 503, 503}, "")
		c, err := client.New(srv.URL, apiKey)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		c.SetSleep(func(context.Context, time.Duration) error { cancel(); return ctx.Err() })
		_, err = c.CreateLink(ctx, annInRoom)
		var e *client.Error
		if !errors.Is(err, context.Canceled) || !errors.As(err, &e) || e.StatusCode != 503 {
			t.Errorf("CreateLink() error = %v; want context.Canceled and the last 503", err)
		}
	})
	t.Run("Retry-After beyond the deadline", func(t *testing.T) {
		srv, hits := flaky(t, []int{429}, "60")
		c, w := newClient(t, srv.URL, apiKey, client.WithTimeout(5*time.Second))
		_, err := c.CreateLink(context.Background(), annInRoom)
		var e *client.Error
		if !errors.As(err, &e) || e.Code != "rate_limited" || e.RetryAfter != time.Minute || hits.Load() != 1 || len(w.d) != 0 {
			t.Errorf("CreateLink() error = %v after %d calls, waits %v; want the 429 at once", err, hits.Load(), w.d)
		}
	})
}

func TestCreateLinkBadAnswers(t *testing.T) {
	tests := []struct {
		name, ctype, body string
		want              string
	}{
		{"html", "text/html", "<html>ok</html>", "not application/json"},
		{"not a link", "application/json", `[1]`, "not a link"},
		{"no url", "application/json", `{"room":"r"}`, "no url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c, _ := newClient(t, srv.URL, apiKey)
			if _, err := c.CreateLink(context.Background(), annInRoom); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CreateLink() error = %v; want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestCreateLinkSendsHeaders(t *testing.T) {
	var got http.Header
	var body map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"url":"https://meet.example.com/r","room":"r","tenant":"","moderator":false,"signed":false}`)
	}))
	defer srv.Close()
	c, _ := newClient(t, srv.URL+"/signer", apiKey, client.WithUserAgent("booking/1.0"))
	if _, err := c.CreateLink(context.Background(), client.LinkRequest{Room: "r", User: client.User{Name: "A"}, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"Authorization": "Bearer " + apiKey, "Content-Type": "application/json", "User-Agent": "booking/1.0"} {
		if got.Get(k) != want {
			t.Errorf("header %s = %q; want %q", k, got.Get(k), want)
		}
	}
	want := map[string]any{"room": "r", "user": map[string]any{"name": "A"}, "ttl_seconds": 3600.0}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Errorf("body = %v; want %v", body, want)
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name, url, key string
		opts           []client.Option
		want           string
	}{
		{"relative URL", "signer:8080", apiKey, nil, "must start with http"},
		{"no host", "http://", apiKey, nil, "has no host"},
		{"credentials in URL", "http://u:p@signer", apiKey, nil, "user information"},
		{"query", "http://signer?x=1", apiKey, nil, "query or fragment"},
		{"key with newline", "http://signer", apiKey + "\n", nil, "white space or control"},
		{"negative retries", "http://signer", apiKey, []client.Option{client.WithMaxRetries(-1)}, "negative"},
		{"negative timeout", "http://signer", apiKey, []client.Option{client.WithTimeout(-time.Second)}, "negative"},
		{"nil HTTP client", "http://signer", apiKey, []client.Option{client.WithHTTPClient(nil)}, "nil"},
		{"bad backoff", "http://signer", apiKey, []client.Option{client.WithBackoff(time.Second, time.Millisecond)}, "initial <= max"},
		{"empty user agent", "http://signer", apiKey, []client.Option{client.WithUserAgent("")}, "User"},
	}
	for _, tt := range tests {
		_, err := client.New(tt.url, tt.key, tt.opts...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New(%q) error = %v; want one mentioning %q", tt.name, tt.url, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), apiKey) {
			t.Errorf("%s: error %q holds the API key", tt.name, err)
		}
	}
	c, _ := newClient(t, "http://signer", apiKey)
	if _, err := c.CreateLink(context.Background(), client.LinkRequest{Room: "r", TTL: 1500 * time.Millisecond}); err == nil ||
		!strings.Contains(err.Error(), "whole number of seconds") {
		t.Errorf("CreateLink(TTL 1.5s) error = %v; want a whole-seconds error", err)
	}
}

func TestClientNeverPrintsKey(t *testing.T) {
	c, _ := newClient(t, "http://signer:8080", apiKey)
	for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, apiKey) || !strings.Contains(s, "[redacted]") {
			t.Errorf("client prints as %q", s)
		}
	}
}

// TestNoServerImports keeps the client free of the service's packages: it
// depends on the standard library alone.
func TestNoServerImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "github.com/jitsi-signer/jitsi-signer/pkg/client" {
			t.Errorf("pkg/client depends on %s; it may use the standard library only", dep)
		}
	}
}

func TestCreateLinkFeaturesAndPolicyRule(t *testing.T) {
	srv := httptest.NewServer(newService(t, hmacSigner(t)))
	defer srv.Close()
	c, err := client.New(srv.URL, apiKey)
	if err != nil {
		t.Fatal(err)
	}
	link, err := c.CreateLink(context.Background(), client.LinkRequest{Room: "r", User: client.User{Name: "Ann"},
		Features: map[string]bool{"recording": false}, LobbyBypass: true})
	if err != nil {
		t.Fatalf("CreateLink with features = %v", err)
	}
	if !link.Signed {
		t.Errorf("link = %+v", link)
	}
	_, err = c.CreateLink(context.Background(), client.LinkRequest{Room: "r", User: client.User{Name: "Ann"}, Features: map[string]bool{"teleport": true}})
	var e *client.Error
	if !errors.As(err, &e) || e.Code != "unknown_feature" || e.Field != "features.teleport" {
		t.Errorf("unknown feature: %v", err)
	}
}
