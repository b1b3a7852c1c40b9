package caller

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

var (
	bookingKey = []byte("booking-key-0123456789")
	chatKey    = []byte("chat-key-0123456789")
	defaults   = Defaults{MaxTTL: 24 * time.Hour, Rate: Rate{PerSecond: 50, Burst: 100}}
)

const openPolicy = "\n    policy: {roles: [moderator, participant], rooms: [\"*\"], tenants: [\"*\"]}"

func file(entries ...string) []byte {
	return []byte("callers:\n" + strings.Join(entries, "\n") + "\n")
}

func callerEntry(name string, key []byte, policy string) string {
	return "  - name: " + name + "\n    key_sha256: " + HashKey(key) + policy
}

func TestParseAndAuthenticate(t *testing.T) {
	yamlFile := file(callerEntry("booking", bookingKey, openPolicy), "  - name: chat-bot\n    key_sha256: "+strings.ToUpper(HashKey(chatKey))+
		"\n    policy:\n      roles: [participant]\n      rooms: [\"chat-*\"]")
	jsonFile := `{"callers":[{"name":"booking","key_sha256":"` + HashKey(bookingKey) + `","policy":{"roles":["moderator"],"rooms":["*"]}},` +
		`{"name":"chat-bot","key_sha256":"` + HashKey(chatKey) + `","policy":{"roles":["participant"],"rooms":["chat-*"]}}]}`
	for name, data := range map[string][]byte{"yaml": yamlFile, "json": []byte(jsonFile)} {
		t.Run(name, func(t *testing.T) {
			s, err := Parse(data, defaults)
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != 2 {
				t.Fatalf("Len() = %d; want 2", s.Len())
			}
			for key, want := range map[string]string{string(bookingKey): "booking", string(chatKey): "chat-bot"} {
				c, ok := s.Authenticate([]byte(key))
				if !ok || c.Name != want {
					t.Errorf("Authenticate(key of %s) = %v, %v", want, c, ok)
				}
			}
			for _, bad := range []string{"", "booking", HashKey(bookingKey), string(bookingKey) + " ", "x"} {
				if c, ok := s.Authenticate([]byte(bad)); ok {
					t.Errorf("Authenticate(%q) = %v; want no caller", bad, c)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	h := HashKey(bookingKey)
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", "lists no callers"},
		{"no callers", "callers: []", "lists no callers"},
		{"not yaml", "callers: [", "not valid YAML or JSON"},
		{"unknown field", "callers:\n  - name: a\n    key: x\n", `unknown field "key"`},
		{"plain key instead of digest", "callers:\n  - name: a\n    key_sha256: secret" + openPolicy + "\n", `caller "a": key_sha256 must be 64 hex digits (the SHA-256 of the API key)`},
		{"bad name", "callers:\n  - name: Booking Service\n    key_sha256: " + h + openPolicy + "\n", `caller "Booking Service": name must be 1-63 lowercase letters, digits, '.', '_' or '-'`},
		{"missing name", "callers:\n  - key_sha256: " + h + openPolicy + "\n", `callers[0]: name must be`},
		{"duplicate name", string(file(callerEntry("a", bookingKey, openPolicy), callerEntry("a", chatKey, openPolicy))), `caller "a": name is listed twice`},
		{"duplicate digest", string(file(callerEntry("a", bookingKey, openPolicy), callerEntry("b", bookingKey, openPolicy))), `caller "b": key_sha256 is the same as caller "a"'s`},
		{"duplicate yaml key", "callers:\n  - name: a\n    name: b\n    key_sha256: " + h + "\n", "not valid YAML or JSON"},
		{"missing policy", string(file(callerEntry("a", bookingKey, ""))), `caller "a": policy is missing (roles and rooms at least)`},
		{"no roles", string(file(callerEntry("a", bookingKey, "\n    policy: {rooms: [\"*\"]}"))), `caller "a": policy.roles must list moderator, participant or both`},
		{"bad role", string(file(callerEntry("a", bookingKey, "\n    policy: {roles: [admin], rooms: [\"*\"]}"))), `caller "a": policy.roles holds "admin"; roles are moderator and participant`},
		{"no rooms", string(file(callerEntry("a", bookingKey, "\n    policy: {roles: [participant]}"))), `caller "a": policy.rooms must list at least one room pattern`},
		{"bad room pattern", string(file(callerEntry("a", bookingKey, "\n    policy: {roles: [participant], rooms: [\"a/*\"]}"))), `caller "a": policy.rooms: room pattern "a/*" holds "/"`},
		{"bad tenant pattern", string(file(callerEntry("a", bookingKey, "\n    policy: {roles: [participant], rooms: [\"*\"], tenants: [\"a.b\"]}"))), `caller "a": policy.tenants holds "a.b"`},
		{"bad max ttl", string(file(callerEntry("a", bookingKey, "\n    policy: {roles: [participant], rooms: [\"*\"], max_ttl: 2 days}"))), `caller "a": policy.max_ttl "2 days" is not a Go duration`},
		{"max ttl above service", string(file(callerEntry("a", bookingKey, "\n    policy: {roles: [participant], rooms: [\"*\"], max_ttl: 48h}"))), `caller "a": policy.max_ttl 48h0m0s is above the service maximum JITSI_TOKEN_MAX_TTL 24h0m0s`},
		{"negative rate", string(file(callerEntry("a", bookingKey, "\n    policy: {roles: [participant], rooms: [\"*\"], rate_limit: {requests_per_second: -1}}"))), `caller "a": policy.rate_limit.requests_per_second must be a number`},
		{"zero burst", string(file(callerEntry("a", bookingKey, "\n    policy: {roles: [participant], rooms: [\"*\"], rate_limit: {requests_per_second: 1, burst: 0}}"))), `caller "a": policy.rate_limit.burst must be between 1 and 1000000`},
		{"unknown policy field", string(file(callerEntry("a", bookingKey, "\n    policy: {roles: [participant], rooms: [\"*\"], admin: true}"))), `unknown field "admin"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.data), defaults)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse() = %v, %v; want an error containing %q", s, err, tt.want)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse(file(callerEntry("a", bookingKey, ""), callerEntry("B", chatKey, "\n    policy: {roles: [x], rooms: []}")), defaults)
	if err == nil {
		t.Fatal("Parse accepted the file")
	}
	want := []string{
		`caller "a": policy is missing`,
		`caller "B": name must be`,
		`caller "B": policy.roles holds "x"`,
		`caller "B": policy.rooms must list at least one room pattern`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

func TestAuthorize(t *testing.T) {
	policy := "\n    policy:\n      roles: [participant]\n      rooms: [\"Booking-*\", \"café-*\"]\n      tenants: [acme, \"clinic-*\"]\n      max_ttl: 2h"
	s, err := Parse(file(callerEntry("booking", bookingKey, policy), callerEntry("ops", chatKey,
		"\n    policy: {roles: [moderator], rooms: [\"*\"], allow_wildcard_room: true}")), defaults)
	if err != nil {
		t.Fatal(err)
	}
	booking, _ := s.Authenticate(bookingKey)
	ops, _ := s.Authenticate(chatKey)
	tests := []struct {
		name    string
		c       *Caller
		g       jitsi.Grant
		code    string
		wantTTL time.Duration
	}{
		{"allowed", booking, jitsi.Grant{Room: "booking-1", Tenant: "acme", Role: jitsi.RoleParticipant, TTL: time.Hour, TTLRequested: true}, "", time.Hour},
		{"tenant pattern", booking, jitsi.Grant{Room: "booking-1", Tenant: "clinic-9", Role: jitsi.RoleParticipant, TTL: time.Hour}, "", time.Hour},
		{"room pattern is canonical", booking, jitsi.Grant{Room: "caf%c3%a9-2", Tenant: "acme", Role: jitsi.RoleParticipant, TTL: time.Hour}, "", time.Hour},
		{"moderator refused", booking, jitsi.Grant{Room: "booking-1", Tenant: "acme", Role: jitsi.RoleModerator, TTL: time.Hour}, CodeForbiddenRole, 0},
		{"room refused", booking, jitsi.Grant{Room: "other-1", Tenant: "acme", Role: jitsi.RoleParticipant, TTL: time.Hour}, CodeForbiddenRoom, 0},
		{"tenant refused", booking, jitsi.Grant{Room: "booking-1", Tenant: "evil", Role: jitsi.RoleParticipant, TTL: time.Hour}, CodeForbiddenTenant, 0},
		{"no tenant refused", booking, jitsi.Grant{Room: "booking-1", Role: jitsi.RoleParticipant, TTL: time.Hour}, CodeForbiddenTenant, 0},
		{"requested ttl above policy", booking, jitsi.Grant{Room: "booking-1", Tenant: "acme", Role: jitsi.RoleParticipant, TTL: 3 * time.Hour, TTLRequested: true}, CodeForbiddenTTL, 0},
		{"default ttl shortened", booking, jitsi.Grant{Room: "booking-1", Tenant: "acme", Role: jitsi.RoleParticipant, TTL: 24 * time.Hour}, "", 2 * time.Hour},
		{"wildcard refused", booking, jitsi.Grant{Room: "*", WildcardRoom: true, Tenant: "acme", Role: jitsi.RoleParticipant, TTL: time.Hour}, CodeForbiddenWildcard, 0},
		{"wildcard allowed", ops, jitsi.Grant{Room: "*", WildcardRoom: true, Role: jitsi.RoleModerator, TTL: time.Hour}, "", time.Hour},
		{"participant refused for moderator-only caller", ops, jitsi.Grant{Room: "r", Role: jitsi.RoleParticipant, TTL: time.Hour}, CodeForbiddenRole, 0},
		{"absent tenants allow only no tenant", ops, jitsi.Grant{Room: "r", Tenant: "acme", Role: jitsi.RoleModerator, TTL: time.Hour}, CodeForbiddenTenant, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.g
			err := tt.c.Authorize(&g)
			if tt.code == "" {
				if err != nil || g.TTL != tt.wantTTL {
					t.Fatalf("Authorize(%+v) = %v, TTL %s; want allowed with TTL %s", tt.g, err, g.TTL, tt.wantTTL)
				}
				return
			}
			var d *Denial
			if !errors.As(err, &d) || d.Code != tt.code || d.Rule == "" || d.Field == "" || !strings.Contains(d.Message, tt.c.Name) {
				t.Fatalf("Authorize(%+v) = %v; want a %s denial naming the caller and rule", tt.g, err, tt.code)
			}
		})
	}
}

func TestAuthorizeFeaturesAndBypass(t *testing.T) {
	s, err := Parse(file(callerEntry("booking", bookingKey, "\n    policy: {roles: [moderator], rooms: [\"*\"], features: {recording: false, lobby: true}, allow_lobby_bypass: true}")), defaults)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Authenticate(bookingKey)
	recording, _ := jitsi.ParseFeature("recording")
	lobby, _ := jitsi.ParseFeature("lobby")
	transcription, _ := jitsi.ParseFeature("transcription")

	g := jitsi.Grant{Room: "r", Role: jitsi.RoleModerator, TTL: time.Hour, Features: jitsi.Features{}.With(recording, true), LobbyBypass: true}
	if err := c.Authorize(&g); err != nil {
		t.Fatalf("allowed feature and bypass refused: %v", err)
	}
	if on, set := g.Features.Lookup(lobby); !on || !set {
		t.Error("the policy's default lobby=true was not applied to a feature the request left unset")
	}
	if on, _ := g.Features.Lookup(recording); !on {
		t.Error("the request's recording=true was overridden by the policy default")
	}
	for name, g := range map[string]jitsi.Grant{
		"feature not in the policy": {Room: "r", Role: jitsi.RoleModerator, TTL: time.Hour, Features: jitsi.Features{}.With(transcription, true)},
		"security bypass":           {Room: "r", Role: jitsi.RoleModerator, TTL: time.Hour, SecurityBypass: true},
	} {
		var d *Denial
		if err := c.Authorize(&g); !errors.As(err, &d) || (d.Code != CodeForbiddenFeature && d.Code != CodeForbiddenBypass) {
			t.Errorf("%s: Authorize = %v; want a feature or bypass denial", name, err)
		}
	}
	// Turning a feature off is always allowed.
	g = jitsi.Grant{Room: "r", Role: jitsi.RoleModerator, TTL: time.Hour, Features: jitsi.Features{}.With(transcription, false)}
	if err := c.Authorize(&g); err != nil {
		t.Errorf("disabling a feature: %v", err)
	}
	if _, err := Parse(file(callerEntry("x", chatKey, "\n    policy: {roles: [moderator], rooms: [\"*\"], features: {teleport: true}}")), defaults); err == nil ||
		!strings.Contains(err.Error(), `policy.features has "teleport"`) {
		t.Errorf("unknown policy feature: %v", err)
	}
}

func TestAnonymousNeverWildcard(t *testing.T) {
	a := NewAnonymous(defaults)
	if a.Name != AnonymousName {
		t.Errorf("anonymous caller is named %q", a.Name)
	}
	g := jitsi.Grant{Room: "*", WildcardRoom: true, Role: jitsi.RoleModerator, TTL: time.Hour}
	var d *Denial
	if err := a.Authorize(&g); !errors.As(err, &d) || d.Code != CodeForbiddenWildcard {
		t.Errorf("anonymous wildcard: %v; want forbidden_wildcard", err)
	}
	g = jitsi.Grant{Room: "r", Tenant: "any", Role: jitsi.RoleModerator, TTL: 24 * time.Hour, TTLRequested: true}
	if err := a.Authorize(&g); err != nil {
		t.Errorf("anonymous ordinary request: %v", err)
	}
}

func TestAllowRateLimit(t *testing.T) {
	s, err := Parse(file(callerEntry("a", bookingKey, "\n    policy: {roles: [participant], rooms: [\"*\"], rate_limit: {requests_per_second: 2, burst: 3}}"),
		callerEntry("b", chatKey, "\n    policy: {roles: [participant], rooms: [\"*\"], rate_limit: {requests_per_second: 0}}")), defaults)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Authenticate(bookingKey)
	now := time.Unix(1_800_000_000, 0)
	for i := 0; i < 3; i++ {
		if ok, _ := a.Allow(now); !ok {
			t.Fatalf("request %d within the burst was refused", i+1)
		}
	}
	ok, wait := a.Allow(now)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("Allow() past the burst = %v, %s; want refused with a wait of at most 500ms at 2 rps", ok, wait)
	}
	if ok, _ := a.Allow(now.Add(wait)); !ok {
		t.Error("Allow() after the wait was refused")
	}
	unlimited, _ := s.Authenticate(chatKey)
	for i := 0; i < 1000; i++ {
		if ok, _ := unlimited.Allow(now); !ok {
			t.Fatal("an unlimited caller was refused")
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "callers.yaml")
	if err := os.WriteFile(path, file(callerEntry("a", bookingKey, openPolicy)), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := LoadFile(path, defaults); err != nil || s.Len() != 1 {
		t.Fatalf("LoadFile() = %v, %v", s, err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml"), defaults); err == nil || !strings.Contains(err.Error(), "missing.yaml cannot be read") {
		t.Errorf("LoadFile(missing) error = %v", err)
	}
}

func TestStoreReplace(t *testing.T) {
	a, _ := Parse(file(callerEntry("a", bookingKey, openPolicy)), defaults)
	b, _ := Parse(file(callerEntry("b", chatKey, openPolicy)), defaults)
	st := NewStore(a)
	if _, ok := st.Load().Authenticate(bookingKey); !ok {
		t.Fatal("caller a not authenticated")
	}
	st.Replace(b)
	if _, ok := st.Load().Authenticate(bookingKey); ok {
		t.Error("caller a still authenticated after being removed")
	}
}

func TestReplaceKeepsRateLimitState(t *testing.T) {
	policy := "\n    policy: {roles: [participant], rooms: [\"*\"], rate_limit: {requests_per_second: 1, burst: 1}}"
	first, _ := Parse(file(callerEntry("a", bookingKey, policy)), defaults)
	st := NewStore(first)
	now := time.Unix(1_800_000_000, 0)
	c, _ := st.Load().Authenticate(bookingKey)
	if ok, _ := c.Allow(now); !ok {
		t.Fatal("first request refused")
	}
	same, _ := Parse(file(callerEntry("a", bookingKey, policy+"\n")), defaults)
	st.Replace(same)
	c, _ = st.Load().Authenticate(bookingKey)
	if ok, _ := c.Allow(now); ok {
		t.Error("a reload with the same rate refilled the caller's bucket")
	}
}

func TestReloader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "callers.yaml")
	write := func(data []byte) {
		t.Helper()
		// Replace the file the way Kubernetes does: write aside, rename over.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(file(callerEntry("a", bookingKey, openPolicy)))
	var outcomes []string
	r := NewReloader(path, defaults, slog.New(slog.NewTextHandler(io.Discard, nil)), func(o string, n int) { outcomes = append(outcomes, o) })
	st, err := r.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(false); err != nil || len(outcomes) != 1 {
		t.Fatalf("Reload of an unchanged file = %v, outcomes %v; want nothing done", err, outcomes)
	}

	write([]byte("callers: [ this is not valid"))
	if err := r.Reload(false); err == nil {
		t.Fatal("Reload accepted an invalid file")
	}
	if _, ok := st.Load().Authenticate(bookingKey); !ok {
		t.Fatal("an invalid file took caller a's access away")
	}
	if err := r.Reload(false); err != nil || len(outcomes) != 2 {
		t.Fatalf("the same invalid file was reported again: %v, outcomes %v", err, outcomes)
	}

	write(file(callerEntry("b", chatKey, openPolicy)))
	if err := r.Reload(false); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Load().Authenticate(bookingKey); ok {
		t.Error("removed caller a still authenticated")
	}
	if _, ok := st.Load().Authenticate(chatKey); !ok {
		t.Error("new caller b not authenticated")
	}
	if want := []string{ReloadSuccess, ReloadFailure, ReloadSuccess}; strings.Join(outcomes, ",") != strings.Join(want, ",") {
		t.Errorf("outcomes = %v; want %v", outcomes, want)
	}
	if err := r.Reload(true); err != nil || len(outcomes) != 4 {
		t.Errorf("a forced reload (SIGHUP) = %v, outcomes %v; want one more success", err, outcomes)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(file(callerEntry("a", bookingKey, openPolicy)))
	f.Add([]byte(`{"callers":[{"name":"b","key_sha256":"` + HashKey(chatKey) + `","policy":{"roles":["participant"],"rooms":["x-*"],"max_ttl":"1h","rate_limit":{"requests_per_second":1.5,"burst":2}}}]}`))
	f.Add([]byte("callers: [{name: x}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, defaults)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if s.Len() == 0 {
			t.Fatal("Parse accepted a file with no callers")
		}
		for _, e := range s.entries {
			p := e.caller.policy
			if !namePattern.MatchString(e.caller.Name) || (!p.moderator && !p.participant) || len(p.rooms) == 0 ||
				p.maxTTL < jitsi.MinTTL || p.maxTTL > defaults.MaxTTL || p.rate.PerSecond < 0 {
				t.Fatalf("Parse accepted caller %+v", e.caller)
			}
		}
	})
}
