package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")
	bookingKey = "bk_live_0123456789abcdefghijklmnop"
	chatKey    = "ck_live_0123456789abcdefghijklmnop"
	opsKey     = "ok_live_0123456789abcdefghijklmnop"
	testNow    = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
)

var testDefaults = caller.Defaults{MaxTTL: 24 * time.Hour, Rate: caller.Rate{PerSecond: 1000, Burst: 1000}}

// testCallers: booking may do anything but wildcard rooms; chat-bot only
// participant links to chat-* rooms for up to an hour, at 1 request per
// second with a burst of 2; ops may sign for every room.
var testCallers = "callers:\n" +
	"  - name: booking\n    key_sha256: " + caller.HashKey([]byte(bookingKey)) +
	"\n    policy: {roles: [moderator, participant], rooms: [\"*\"], tenants: [\"*\"]}\n" +
	"  - name: chat-bot\n    key_sha256: " + caller.HashKey([]byte(chatKey)) +
	"\n    policy: {roles: [participant], rooms: [\"chat-*\"], max_ttl: 1h, rate_limit: {requests_per_second: 1, burst: 2}}\n" +
	"  - name: ops\n    key_sha256: " + caller.HashKey([]byte(opsKey)) +
	"\n    policy: {roles: [moderator], rooms: [\"ops-*\"], allow_wildcard_room: true}\n"

// syncBuffer is a log sink that tests read while handlers write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testAPI struct {
	handler http.Handler
	reg     *prometheus.Registry
	metrics *Metrics
	logs    *syncBuffer
}

// newTestAPI builds the real router with a fixed clock. signed chooses
// HS256 or unsigned links; anonymous drops the callers file.
func newTestAPI(t testing.TB, signed, anonymous bool) *testAPI {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, BuildInfo{Version: "test", Revision: "abc"})
	var signer jitsi.Signer
	if signed {
		s, err := jitsi.NewHMACSigner("HS256", testSecret, "")
		if err != nil {
			t.Fatal(err)
		}
		signer = m.InstrumentSigner(s)
	}
	is, err := jitsi.NewIssuer(jitsi.Config{
		BaseURL: "https://meet.example.com", AppID: "my-app", Audience: "jitsi", Subject: "meet.example.com",
		DefaultTTL: 24 * time.Hour, MaxTTL: 24 * time.Hour, ClockSkew: 30 * time.Second,
		Now: func() time.Time { return testNow },
	}, signer)
	if err != nil {
		t.Fatal(err)
	}
	var store *caller.Store
	if !anonymous {
		set, err := caller.Parse([]byte(testCallers), testDefaults)
		if err != nil {
			t.Fatal(err)
		}
		store = caller.NewStore(set)
	}
	logs := &syncBuffer{}
	// The clock stands still, so no bucket ever refills: the anonymous
	// caller, which the fuzz target uses, gets no rate limit.
	h := NewAPI(Options{Issuer: is, Callers: store, Anonymous: caller.NewAnonymous(caller.Defaults{MaxTTL: 24 * time.Hour}), Metrics: m,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)), Now: func() time.Time { return testNow }})
	if t, ok := t.(*testing.T); ok {
		// Every exchange of a test is checked against api/openapi.yaml;
		// fuzz targets and benchmarks use the router alone.
		h = validated(t, h)
	}
	return &testAPI{handler: h, reg: reg, metrics: m, logs: logs}
}

type request struct {
	method  string
	path    string
	body    string
	headers map[string][]string
}

func (a *testAPI) do(r request) *httptest.ResponseRecorder {
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.path == "" {
		r.path = "/v1/links"
	}
	req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	if r.headers == nil {
		r.headers = map[string][]string{"Authorization": {"Bearer " + bookingKey}, "Content-Type": {"application/json"}}
	}
	for k, vs := range r.headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	return rec
}

func authJSON(key string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + key}, "Content-Type": {"application/json"}}
}

func TestCreateLink(t *testing.T) {
	a := newTestAPI(t, true, false)
	rec := a.do(request{body: `{"room":"Booking-123-abc","tenant":"acme","user":{"id":"42","name":"John Doe","email":"john@example.com","avatar":"https://example.com/a.png"},"role":"moderator","ttl_seconds":7200}`})
	if rec.Code != http.StatusOK {
		t.Fatalf("POST /v1/links = %d %s; want 200", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q; want no-store for a body with a token", cc)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	token, _ := got["token"].(string)
	want := map[string]any{
		"url":        "https://meet.example.com/acme/booking-123-abc?jwt=" + token,
		"token":      token,
		"room":       "booking-123-abc",
		"tenant":     "acme",
		"moderator":  true,
		"signed":     true,
		"token_id":   got["token_id"],
		"expires_at": "2026-12-03T20:00:00Z",
	}
	if len(got) != len(want) {
		t.Errorf("response has fields %v; want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("response %s = %v; want %v", k, got[k], w)
		}
	}

	// An independent library verifies the token and every claim.
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return testSecret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("my-app"), jwt.WithAudience("jitsi"),
		jwt.WithSubject("acme"), jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return testNow }))
	if err != nil {
		t.Fatalf("golang-jwt refuses the token: %v", err)
	}
	user := claims["context"].(map[string]any)["user"].(map[string]any)
	if claims["room"] != "booking-123-abc" || claims["jti"] != got["token_id"] || claims["exp"] != float64(testNow.Add(2*time.Hour).Unix()) ||
		claims["nbf"] != float64(testNow.Add(-30*time.Second).Unix()) || claims["iat"] != float64(testNow.Unix()) ||
		user["id"] != "42" || user["name"] != "John Doe" || user["email"] != "john@example.com" ||
		user["avatar"] != "https://example.com/a.png" || user["moderator"] != "true" || user["affiliation"] != "owner" {
		t.Errorf("claims = %v", claims)
	}

	if v := testutil.ToFloat64(a.metrics.linksIssued.WithLabelValues("booking", "moderator", "HS256", "true")); v != 1 {
		t.Errorf("links issued{booking,moderator,HS256,true} = %v; want 1", v)
	}
	if n := testutil.CollectAndCount(a.metrics.signingDuration); n != 1 {
		t.Errorf("signing duration series = %d; want 1", n)
	}
	audit := a.logs.String()
	for _, want := range []string{`"msg":"link issued"`, `"caller":"booking"`, `"room":"booking-123-abc"`, `"tenant":"acme"`,
		`"user_id":"42"`, `"role":"moderator"`, `"token_id":"` + got["token_id"].(string) + `"`, `"expires_at":"2026-12-03T20:00:00Z"`, `"alg":"HS256"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log lacks %s:\n%s", want, audit)
		}
	}
}

func TestCreateLinkUnsigned(t *testing.T) {
	a := newTestAPI(t, false, true)
	rec := a.do(request{body: `{"room":"Booking 123","user":{"name":"John Doe"}}`, headers: map[string][]string{"Content-Type": {"application/json"}}})
	if rec.Code != http.StatusOK {
		t.Fatalf("POST /v1/links = %d %s; want 200", rec.Code, rec.Body)
	}
	want := `{"url":"https://meet.example.com/booking%20123#userInfo.displayName=\"John%20Doe\"","room":"booking%20123","tenant":"","moderator":false,"signed":false}`
	if got := rec.Body.String(); got != want {
		t.Errorf("body = %s; want %s", got, want)
	}
	if v := testutil.ToFloat64(a.metrics.linksIssued.WithLabelValues("anonymous", "participant", "none", "false")); v != 1 {
		t.Errorf("links issued{anonymous,participant,none,false} = %v; want 1", v)
	}
}

// TestHostileRequests sends malformed and hostile requests through the real
// router. None may produce a 5xx, a panic, a token, or a log line holding
// the credential.
func TestHostileRequests(t *testing.T) {
	ok := `{"room":"r","user":{"name":"Ann"}}`
	jsonCT := map[string][]string{"Authorization": {"Bearer " + bookingKey}, "Content-Type": {"application/json"}}
	tests := []struct {
		name   string
		req    request
		status int
		code   string
		field  string
	}{
		{"no authorization", request{body: ok, headers: map[string][]string{"Content-Type": {"application/json"}}}, 401, "unauthorized", ""},
		{"unknown key", request{body: ok, headers: authJSON("nope")}, 401, "unauthorized", ""},
		{"basic auth", request{body: ok, headers: map[string][]string{"Authorization": {"Basic Ym9va2luZzp4"}, "Content-Type": {"application/json"}}}, 401, "unauthorized", ""},
		{"two authorization headers", request{body: ok, headers: map[string][]string{"Authorization": {"Bearer " + bookingKey, "Bearer " + chatKey}, "Content-Type": {"application/json"}}}, 401, "unauthorized", ""},
		{"bearer without key", request{body: ok, headers: authJSON("")}, 401, "unauthorized", ""},
		{"text content type", request{body: ok, headers: map[string][]string{"Authorization": {"Bearer " + bookingKey}, "Content-Type": {"text/plain"}}}, 415, "unsupported_media_type", ""},
		{"no content type", request{body: ok, headers: map[string][]string{"Authorization": {"Bearer " + bookingKey}}}, 415, "unsupported_media_type", ""},
		{"latin-1 charset", request{body: ok, headers: map[string][]string{"Authorization": {"Bearer " + bookingKey}, "Content-Type": {"application/json; charset=latin1"}}}, 415, "unsupported_media_type", ""},
		{"body too large", request{body: `{"room":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, headers: jsonCT}, 413, "body_too_large", ""},
		{"empty body", request{body: "", headers: jsonCT}, 400, "malformed_json", ""},
		{"truncated", request{body: `{"room":"r"`, headers: jsonCT}, 400, "malformed_json", ""},
		{"not json", request{body: `room=r`, headers: jsonCT}, 400, "malformed_json", ""},
		{"array", request{body: `[1]`, headers: jsonCT}, 400, "malformed_json", ""},
		{"two objects", request{body: ok + ok, headers: jsonCT}, 400, "malformed_json", ""},
		{"invalid UTF-8", request{body: "{\"room\":\"r\xff\",\"user\":{\"name\":\"Ann\"}}", headers: jsonCT}, 400, "malformed_json", ""},
		{"unknown field", request{body: `{"room":"r","user":{"name":"Ann"},"admin":true}`, headers: jsonCT}, 400, "unknown_field", "admin"},
		{"unknown user field", request{body: `{"room":"r","user":{"name":"Ann","is_admin":true}}`, headers: jsonCT}, 400, "unknown_field", "is_admin"},
		{"miscased field", request{body: `{"Room":"r","user":{"name":"Ann"}}`, headers: jsonCT}, 400, "unknown_field", "Room"},
		{"miscased user field", request{body: `{"room":"r","user":{"NAME":"Ann"}}`, headers: jsonCT}, 400, "unknown_field", "NAME"},
		{"room not a string", request{body: `{"room":5,"user":{"name":"Ann"}}`, headers: jsonCT}, 422, "invalid_field", "room"},
		{"name not a string", request{body: `{"room":"r","user":{"name":["Ann"]}}`, headers: jsonCT}, 422, "invalid_field", "user.name"},
		{"ttl a string", request{body: `{"room":"r","user":{"name":"Ann"},"ttl_seconds":"7200"}`, headers: jsonCT}, 422, "invalid_field", "ttl_seconds"},
		{"ttl a fraction", request{body: `{"room":"r","user":{"name":"Ann"},"ttl_seconds":60.5}`, headers: jsonCT}, 422, "invalid_field", "ttl_seconds"},
		{"ttl huge", request{body: `{"room":"r","user":{"name":"Ann"},"ttl_seconds":1e30}`, headers: jsonCT}, 422, "invalid_field", "ttl_seconds"},
		{"ttl overflowing", request{body: `{"room":"r","user":{"name":"Ann"},"ttl_seconds":9223372036854775807}`, headers: jsonCT}, 422, "ttl_out_of_range", "ttl_seconds"},
		{"ttl negative", request{body: `{"room":"r","user":{"name":"Ann"},"ttl_seconds":-60}`, headers: jsonCT}, 422, "ttl_out_of_range", "ttl_seconds"},
		{"ttl zero", request{body: `{"room":"r","user":{"name":"Ann"},"ttl_seconds":0}`, headers: jsonCT}, 422, "ttl_out_of_range", "ttl_seconds"},
		{"ttl above max", request{body: `{"room":"r","user":{"name":"Ann"},"ttl_seconds":86401}`, headers: jsonCT}, 422, "ttl_out_of_range", "ttl_seconds"},
		{"no user", request{body: `{"room":"r"}`, headers: jsonCT}, 422, "missing_field", "user.name"},
		{"null user", request{body: `{"room":"r","user":null}`, headers: jsonCT}, 422, "missing_field", "user.name"},
		{"no room", request{body: `{"user":{"name":"Ann"}}`, headers: jsonCT}, 422, "missing_field", "room"},
		{"apostrophe room", request{body: `{"room":"Mario's","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "room_not_joinable", "room"},
		{"bad role", request{body: `{"room":"r","user":{"name":"Ann"},"role":"admin"}`, headers: jsonCT}, 422, "invalid_role", "role"},
		{"javascript avatar", request{body: `{"room":"r","user":{"name":"Ann","avatar":"javascript:alert(1)"}}`, headers: jsonCT}, 422, "invalid_field", "user.avatar"},
		{"GET", request{method: http.MethodGet, headers: jsonCT}, 405, "method_not_allowed", ""},
		{"PUT", request{method: http.MethodPut, body: ok, headers: jsonCT}, 405, "method_not_allowed", ""},
		{"DELETE", request{method: http.MethodDelete, headers: jsonCT}, 405, "method_not_allowed", ""},
		{"form content type", request{body: "room=r", headers: map[string][]string{"Authorization": {"Bearer " + bookingKey}, "Content-Type": {"application/x-www-form-urlencoded"}}}, 415, "unsupported_media_type", ""},
		{"two content types", request{body: ok, headers: map[string][]string{"Authorization": {"Bearer " + bookingKey}, "Content-Type": {"application/json", "text/plain"}}}, 415, "unsupported_media_type", ""},
		{"deeply nested", request{body: `{"room":"r","user":{"name":"Ann"},"x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, headers: jsonCT}, 400, "malformed_json", ""},
		{"nested user objects", request{body: `{"room":"r","user":{"name":{"first":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}}}`, headers: jsonCT}, 400, "malformed_json", ""},
		{"duplicate room", request{body: `{"room":"booking-1","user":{"name":"Ann"},"room":"other"}`, headers: jsonCT}, 400, "duplicate_field", "room"},
		{"duplicate escaped role", request{body: `{"room":"r","user":{"name":"Ann"},"role":"participant","\u0072ole":"moderator"}`, headers: jsonCT}, 400, "duplicate_field", "role"},
		{"duplicate user name", request{body: `{"room":"r","user":{"name":"Ann","name":"Bob"}}`, headers: jsonCT}, 400, "duplicate_field", "name"},
		{"null room", request{body: `{"room":null,"user":{"name":"Ann"}}`, headers: jsonCT}, 422, "missing_field", "room"},
		{"null name", request{body: `{"room":"r","user":{"name":null}}`, headers: jsonCT}, 422, "missing_field", "user.name"},
		{"null body", request{body: `null`, headers: jsonCT}, 422, "missing_field", "user.name"},
		{"role as number", request{body: `{"room":"r","user":{"name":"Ann"},"role":1}`, headers: jsonCT}, 422, "invalid_field", "role"},
		{"user as string", request{body: `{"room":"r","user":"Ann"}`, headers: jsonCT}, 422, "invalid_field", "user"},
		{"NUL in name", request{body: `{"room":"r","user":{"name":"Ann\u0000"}}`, headers: jsonCT}, 422, "invalid_field", "user.name"},
		{"control character in room", request{body: `{"room":"r\u0007","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "invalid_field", "room"},
		{"header injection in name", request{body: `{"room":"r","user":{"name":"Ann\r\nSet-Cookie: x=1"}}`, headers: jsonCT}, 422, "invalid_field", "user.name"},
		{"header injection in id", request{body: `{"room":"r","user":{"name":"Ann","id":"1\nX: y"}}`, headers: jsonCT}, 422, "invalid_field", "user.id"},
		{"script in avatar", request{body: `{"room":"r","user":{"name":"Ann","avatar":"JavaScript:alert(1)"}}`, headers: jsonCT}, 422, "invalid_field", "user.avatar"},
		{"html in avatar", request{body: `{"room":"r","user":{"name":"Ann","avatar":"https://x.example/<script>"}}`, headers: jsonCT}, 422, "invalid_field", "user.avatar"},
		{"room with slash", request{body: `{"room":"a/b","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "room_not_joinable", "room"},
		{"room dot dot", request{body: `{"room":"..","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "room_not_joinable", "room"},
		{"room encoded slash", request{body: `{"room":"a%2fb","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "room_not_joinable", "room"},
		{"room with hash", request{body: `{"room":"a#b","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "room_not_joinable", "room"},
		{"room with question mark", request{body: `{"room":"a?jwt=x","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "room_not_joinable", "room"},
		{"room whitespace only", request{body: `{"room":"   ","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "invalid_field", "room"},
		{"room 10000 characters", request{body: `{"room":"` + strings.Repeat("a", 10000) + `","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "too_long", "room"},
		{"name 10000 characters", request{body: `{"room":"r","user":{"name":"` + strings.Repeat("n", 10000) + `"}}`, headers: jsonCT}, 422, "too_long", "user.name"},
		{"email 10000 characters", request{body: `{"room":"r","user":{"name":"Ann","email":"` + strings.Repeat("e", 10000) + `@x.y"}}`, headers: jsonCT}, 422, "too_long", "user.email"},
		{"tenant 10000 characters", request{body: `{"room":"r","tenant":"` + strings.Repeat("t", 10000) + `","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "too_long", "tenant"},
		{"tenant traversal", request{body: `{"room":"r","tenant":"../admin","user":{"name":"Ann"}}`, headers: jsonCT}, 422, "invalid_tenant", "tenant"},
		{"lowercase bearer with tab", request{body: ok, headers: map[string][]string{"Authorization": {"bearer\t" + bookingKey}, "Content-Type": {"application/json"}}}, 401, "unauthorized", ""},
		{"key of 10000 characters", request{body: ok, headers: authJSON(strings.Repeat("k", 10000))}, 401, "unauthorized", ""},
		{"digest instead of key", request{body: ok, headers: authJSON(caller.HashKey([]byte(bookingKey)))}, 401, "unauthorized", ""},
		{"moderator by a participant-only caller", request{body: `{"room":"chat-1","user":{"name":"Ann"},"role":"moderator"}`, headers: authJSON(chatKey)}, 403, "forbidden_role", "role"},
		{"room outside the caller's patterns", request{body: `{"room":"booking-1","user":{"name":"Ann"}}`, headers: authJSON(chatKey)}, 403, "forbidden_room", "room"},
		{"tenant the caller may not use", request{body: `{"room":"chat-1","tenant":"acme","user":{"name":"Ann"}}`, headers: authJSON(chatKey)}, 403, "forbidden_tenant", "tenant"},
		{"ttl above the caller's maximum", request{body: `{"room":"chat-1","user":{"name":"Ann"},"ttl_seconds":7200}`, headers: authJSON(chatKey)}, 403, "forbidden_ttl", "ttl_seconds"},
		{"feature the caller may not enable", request{body: `{"room":"chat-1","user":{"name":"Ann"},"features":{"recording":true}}`, headers: authJSON(chatKey)}, 403, "forbidden_feature", "features.recording"},
		{"lobby bypass the caller may not grant", request{body: `{"room":"chat-1","user":{"name":"Ann"},"lobby_bypass":true}`, headers: authJSON(chatKey)}, 403, "forbidden_bypass", "lobby_bypass"},
		{"wildcard room without permission", request{body: `{"room":"*","user":{"name":"Ann"}}`, headers: jsonCT}, 403, "forbidden_wildcard", "room"},
		{"unknown path", request{path: "/v1/link", body: ok, headers: jsonCT}, 404, "not_found", ""},
		{"unknown feature", request{body: `{"room":"r","user":{"name":"Ann"},"features":{"recording":true,"teleport":true}}`, headers: jsonCT}, 422, "unknown_feature", "features.teleport"},
		{"feature in another case", request{body: `{"room":"r","user":{"name":"Ann"},"features":{"Recording":true}}`, headers: jsonCT}, 422, "unknown_feature", "features.Recording"},
		{"feature as a string", request{body: `{"room":"r","user":{"name":"Ann"},"features":{"recording":"true"}}`, headers: jsonCT}, 422, "invalid_field", "features.recording"},
		{"features an array", request{body: `{"room":"r","user":{"name":"Ann"},"features":["recording"]}`, headers: jsonCT}, 422, "invalid_field", "features"},
		{"lobby_bypass a string", request{body: `{"room":"r","user":{"name":"Ann"},"lobby_bypass":"yes"}`, headers: jsonCT}, 422, "invalid_field", "lobby_bypass"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAPI(t, true, false)
			rec := a.do(tt.req)
			checkProblem(t, rec, tt.status, tt.code, tt.field)
			if tt.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tt.status == 403 {
				var p problem
				_ = json.Unmarshal(rec.Body.Bytes(), &p)
				if !strings.HasPrefix(p.Rule, "policy.") {
					t.Errorf("403 rule = %q; want the policy field that denied it", p.Rule)
				}
				if !strings.Contains(a.logs.String(), `"msg":"link denied"`) {
					t.Errorf("denial not in the audit log:\n%s", a.logs)
				}
			}
			if strings.Contains(rec.Body.String(), "eyJ") {
				t.Errorf("refusal carries a token: %s", rec.Body)
			}
			if strings.Contains(a.logs.String(), bookingKey) || strings.Contains(a.logs.String(), chatKey) {
				t.Errorf("logs contain the API key:\n%s", a.logs)
			}
			if testutil.ToFloat64(a.metrics.linksIssued.WithLabelValues("booking", "participant", "HS256", "true")) != 0 {
				t.Error("a refused request counted as an issued link")
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	a := newTestAPI(t, true, false)
	body := `{"room":"chat-1","user":{"name":"Ann"}}`
	for i := 0; i < 2; i++ {
		if rec := a.do(request{body: body, headers: authJSON(chatKey)}); rec.Code != 200 {
			t.Fatalf("request %d within the burst = %d %s", i+1, rec.Code, rec.Body)
		}
	}
	rec := a.do(request{body: body, headers: authJSON(chatKey)})
	checkProblem(t, rec, http.StatusTooManyRequests, "rate_limited", "")
	if ra := rec.Header().Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After = %q; want 1 at one request per second", ra)
	}
	// Another caller has its own bucket.
	if rec := a.do(request{body: body}); rec.Code != 200 {
		t.Errorf("booking after chat-bot's limit = %d; want 200", rec.Code)
	}
	if got := testutil.ToFloat64(a.metrics.rejected.WithLabelValues("chat-bot", "rate_limited")); got != 1 {
		t.Errorf("rejected{chat-bot,rate_limited} = %v; want 1", got)
	}
}

func TestWildcardRoomIsAuditedLoudly(t *testing.T) {
	a := newTestAPI(t, true, false)
	rec := a.do(request{body: `{"room":"*","user":{"name":"Ops"},"role":"moderator"}`, headers: authJSON(opsKey)})
	if rec.Code != 200 {
		t.Fatalf("wildcard by ops = %d %s", rec.Code, rec.Body)
	}
	var resp linkResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Room != "*" || resp.URL != "https://meet.example.com/?jwt="+resp.Token {
		t.Errorf("wildcard link = %+v", resp)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(resp.Token, claims, func(*jwt.Token) (any, error) { return testSecret, nil },
		jwt.WithTimeFunc(func() time.Time { return testNow })); err != nil || claims["room"] != "*" {
		t.Fatalf("wildcard token: %v, room %v", err, claims["room"])
	}
	if !strings.Contains(a.logs.String(), `"level":"WARN","msg":"link issued for every room"`) {
		t.Errorf("no warning in the audit log:\n%s", a.logs)
	}
	// The same caller's ordinary rooms are bounded by its patterns.
	rec = a.do(request{body: `{"room":"other","user":{"name":"Ops"},"role":"moderator"}`, headers: authJSON(opsKey)})
	checkProblem(t, rec, http.StatusForbidden, "forbidden_room", "room")
}

// TestPolicyWithoutFeaturesGrantsNone shows that a caller whose policy
// lets it enable no feature cannot hand out moderator tokens without a
// features object, which would give the moderator every feature.
func TestPolicyWithoutFeaturesGrantsNone(t *testing.T) {
	a := newTestAPI(t, true, false)
	rec := a.do(request{body: `{"room":"r","user":{"name":"Ann"},"role":"moderator"}`})
	if rec.Code != 200 {
		t.Fatalf("booking moderator link = %d %s", rec.Code, rec.Body)
	}
	var resp linkResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(resp.Token, claims, func(*jwt.Token) (any, error) { return testSecret, nil },
		jwt.WithTimeFunc(func() time.Time { return testNow })); err != nil {
		t.Fatal(err)
	}
	features, _ := claims["context"].(map[string]any)["features"].(map[string]any)
	for _, name := range jitsi.FeatureNames() {
		if features[name] != "false" {
			t.Errorf("context.features.%s = %v; want \"false\" for a caller that may enable no feature", name, features[name])
		}
	}
}

func TestPolicyDefaultTTLIsShortened(t *testing.T) {
	a := newTestAPI(t, true, false)
	rec := a.do(request{body: `{"room":"chat-1","user":{"name":"Ann"}}`, headers: authJSON(chatKey)})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"expires_at":"2026-12-03T19:00:00Z"`) {
		t.Errorf("chat-bot without ttl = %d %s; want the policy's 1h maximum instead of the 24h default", rec.Code, rec.Body)
	}
}

func checkProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, code, field string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d %s; want %d", rec.Code, rec.Body, status)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q; want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("body %s is not a problem: %v", rec.Body, err)
	}
	if p.Status != status || p.Code != code || p.Field != field || p.Title != http.StatusText(status) || p.Detail == "" || p.Type != "about:blank" {
		t.Errorf("problem = %+v; want status %d, code %s, field %q", p, status, code, field)
	}
}

func TestAuthFailuresAreIdenticalAndCounted(t *testing.T) {
	a := newTestAPI(t, true, false)
	ok := `{"room":"r","user":{"name":"Ann"}}`
	unknown := a.do(request{body: ok, headers: authJSON("not-a-known-key")})
	missing := a.do(request{body: ok, headers: map[string][]string{"Content-Type": {"application/json"}}})
	malformed := a.do(request{body: ok, headers: map[string][]string{"Authorization": {"Token " + bookingKey}, "Content-Type": {"application/json"}}})
	if unknown.Body.String() != missing.Body.String() || unknown.Body.String() != malformed.Body.String() {
		t.Errorf("401 bodies differ:\n%s\n%s\n%s", unknown.Body, missing.Body, malformed.Body)
	}
	for reason, want := range map[string]float64{"unknown_key": 1, "missing": 1, "malformed": 1} {
		if got := testutil.ToFloat64(a.metrics.authFailures.WithLabelValues(reason)); got != want {
			t.Errorf("auth failures{%s} = %v; want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(a.metrics.rejected.WithLabelValues("unauthenticated", "unauthorized")); got != 3 {
		t.Errorf("rejected{unauthenticated,unauthorized} = %v; want 3", got)
	}
	// The second caller is attributed to its own name.
	if rec := a.do(request{body: `{"room":"chat-1","user":{"name":"Ann"}}`, headers: authJSON(chatKey)}); rec.Code != 200 {
		t.Fatalf("chat-bot: %d %s", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(a.metrics.linksIssued.WithLabelValues("chat-bot", "participant", "HS256", "true")); got != 1 {
		t.Errorf("links issued{chat-bot} = %v; want 1", got)
	}
}

// TestSecretsNeverLogged runs successes and failures and checks that no log
// line holds the signing secret, an API key, a token, or the user's name
// and email.
func TestSecretsNeverLogged(t *testing.T) {
	a := newTestAPI(t, true, false)
	var tokens []string
	for _, body := range []string{
		`{"room":"r","user":{"name":"Zelda Secretname","email":"zelda@example.com"}}`,
		`{"room":"r'","user":{"name":"Zelda Secretname","email":"zelda@example.com"}}`,
		`{"room":"r","user":{"name":"Zelda Secretname","email":"zelda@example.com"},"x":1}`,
	} {
		rec := a.do(request{body: body})
		var resp linkResponse
		_ = json.Unmarshal(rec.Body.Bytes(), &resp)
		if resp.Token != "" {
			tokens = append(tokens, resp.Token)
		}
	}
	a.do(request{body: `{}`, headers: authJSON(string(testSecret))})
	if len(tokens) != 1 {
		t.Fatalf("issued %d tokens; want 1", len(tokens))
	}
	logs := a.logs.String()
	for _, secret := range append(tokens, string(testSecret), bookingKey, "Zelda Secretname", "zelda@example.com",
		strings.Split(tokens[0], ".")[2]) {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
	metrics, err := testutil.GatherAndCount(a.reg)
	if err != nil || metrics == 0 {
		t.Fatalf("gather: %d, %v", metrics, err)
	}
	mfs, _ := a.reg.Gather()
	var all strings.Builder
	for _, mf := range mfs {
		all.WriteString(mf.String())
	}
	for _, secret := range []string{tokens[0], string(testSecret), bookingKey, "Zelda", "zelda@example.com", `"r"`} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("metrics contain %q", secret)
		}
	}
}

func TestMetricsLint(t *testing.T) {
	a := newTestAPI(t, true, false)
	a.do(request{body: `{"room":"r","user":{"name":"Ann"}}`})
	a.do(request{body: `{"room":"r'","user":{"name":"Ann"}}`})
	a.do(request{body: `{}`, headers: authJSON("x")})
	problems, err := testutil.GatherAndLint(a.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	if got := testutil.ToFloat64(a.metrics.httpRequests.WithLabelValues("/v1/links", "POST", "200")); got != 1 {
		t.Errorf("http requests{/v1/links,POST,200} = %v; want 1", got)
	}
	a.do(request{path: "/secret/path/with/room", body: `{}`})
	if got := testutil.ToFloat64(a.metrics.httpRequests.WithLabelValues("unmatched", "POST", "404")); got != 1 {
		t.Errorf("http requests{unmatched,POST,404} = %v; want 1: raw paths must not become labels", got)
	}
}

func TestAdmin(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg, BuildInfo{Version: "1.2.3", Revision: "abc"})
	h := NewHealth(true)
	admin := validated(t, NewAdmin(h, reg))
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get("/healthz"); rec.Code != 200 || rec.Body.String() != `{"status":"ok"}` {
		t.Errorf("/healthz = %d %s", rec.Code, rec.Body)
	}
	if rec := get("/readyz"); rec.Code != 200 || rec.Body.String() != `{"status":"ready","signed":true}` {
		t.Errorf("/readyz = %d %s", rec.Code, rec.Body)
	}
	h.SetReady(false)
	if rec := get("/readyz"); rec.Code != 503 || rec.Body.String() != `{"status":"shutting_down"}` {
		t.Errorf("/readyz while shutting down = %d %s", rec.Code, rec.Body)
	}
	if rec := get("/healthz"); rec.Code != 200 {
		t.Errorf("/healthz while shutting down = %d; the process is still alive", rec.Code)
	}
	rec := get("/metrics")
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`jitsi_signer_build_info{goversion="`, `revision="abc",version="1.2.3"} 1`, "go_goroutines", "process_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if unsigned := validated(t, NewAdmin(NewHealth(false), reg)); true {
		rec := httptest.NewRecorder()
		unsigned.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != 200 || rec.Body.String() != `{"status":"ready","signed":false}` {
			t.Errorf("/readyz unsigned = %d %s; the unsigned fallback is ready", rec.Code, rec.Body)
		}
	}
}

func FuzzDecodeLinkRequest(f *testing.F) {
	for _, s := range []string{
		`{"room":"r","user":{"name":"Ann"}}`, `{"room":"r","ttl_seconds":1e400}`, `{"user":null}`, `[]`, `{"room":"a","room":"b"}`,
		"{\"room\":\"\xff\"}", `{"a":` + strings.Repeat("[", 10000), `{"ttl_seconds":-1}`, `null`,
		`{"room":"r","user":{"name":"Ann"},"features":{"recording":true,"x":1},"lobby_bypass":true}`, `{"features":{"lobby":null}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		// A fresh API per input: the test clock stands still, so a shared
		// caller's rate limit would never refill and every later input
		// would be answered 429.
		a := newTestAPI(t, true, true)
		req := httptest.NewRequest(http.MethodPost, "/v1/links", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		// The contract holds for every input: an answer it documents, and a
		// refusal for every request it does not allow.
		validated(t, a.handler).ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
			var resp linkResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Token == "" {
				t.Fatalf("200 without a token for %q: %s", body, rec.Body)
			}
		case 400, 413, 422:
			var p problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code == "" || p.Detail == "" {
				t.Fatalf("%d without a problem body for %q: %s", rec.Code, body, rec.Body)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

func BenchmarkCreateLink(b *testing.B) {
	a := newTestAPI(b, true, false)
	a.handler = NewAPI(Options{Issuer: mustIssuer(b), Callers: caller.NewStore(mustCallers(b)), Metrics: a.metrics, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	body := `{"room":"Booking-123-abc","tenant":"acme","user":{"id":"42","name":"John Doe","email":"john@example.com"},"role":"moderator","ttl_seconds":7200}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/links", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bookingKey)
		rec := httptest.NewRecorder()
		a.handler.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body)
		}
	}
}

func mustIssuer(b testing.TB) *jitsi.Issuer {
	s, err := jitsi.NewHMACSigner("HS256", testSecret, "")
	if err != nil {
		b.Fatal(err)
	}
	is, err := jitsi.NewIssuer(jitsi.Config{BaseURL: "https://meet.example.com", AppID: "my-app", Audience: "jitsi",
		Subject: "meet.example.com", DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour, ClockSkew: 30 * time.Second}, s)
	if err != nil {
		b.Fatal(err)
	}
	return is
}

// mustCallers returns the test callers without a default rate limit, so that
// a benchmark measures signing, not waiting.
func mustCallers(b *testing.B) *caller.Set {
	set, err := caller.Parse([]byte(testCallers), caller.Defaults{MaxTTL: 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return set
}
