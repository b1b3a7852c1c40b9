package jitsi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")
	testNow    = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
)

func testConfig() Config {
	return Config{
		BaseURL:    "https://meet.example.com",
		AppID:      "my-app",
		Audience:   "jitsi",
		Subject:    "meet.example.com",
		DefaultTTL: 24 * time.Hour,
		MaxTTL:     24 * time.Hour,
		ClockSkew:  30 * time.Second,
		Now:        func() time.Time { return testNow },
	}
}

func newTestIssuer(t testing.TB, mutate func(*Config), alg string) *Issuer {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	var signer Signer
	if alg != "" {
		s, err := NewHMACSigner(alg, testSecret, "")
		if err != nil {
			t.Fatal(err)
		}
		signer = s
	}
	is, err := NewIssuer(cfg, signer)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// verify checks token with golang-jwt, an implementation independent of
// ours, as Prosody would: signature, algorithm, issuer, audience, expiry,
// not-before (Prosody does not check iat); it returns the header and the claims as raw JSON values.
func verify(t *testing.T, token, alg string, at time.Time) (map[string]any, map[string]json.RawMessage) {
	t.Helper()
	parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return testSecret, nil },
		jwt.WithValidMethods([]string{alg}),
		jwt.WithIssuer("my-app"),
		jwt.WithAudience("jitsi"),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return at }),
	)
	if err != nil {
		t.Fatalf("golang-jwt refuses the token: %v", err)
	}
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return parsed.Header, claims
}

func TestIssueSignedVerifiesIndependently(t *testing.T) {
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		t.Run(alg, func(t *testing.T) {
			is := newTestIssuer(t, nil, alg)
			link, err := is.Issue(LinkRequest{
				Room:   "Café Booking 12",
				Tenant: "Acme",
				User:   User{ID: "42", Name: "John \"JD\" Doe", Email: "john@example.com", Avatar: "https://example.com/a.png"},
				Role:   RoleModerator,
				TTL:    2 * time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			header, claims := verify(t, link.Token, alg, testNow)
			if header["typ"] != "JWT" || header["alg"] != alg || header["kid"] != nil {
				t.Errorf("header = %v; want typ JWT, alg %s, no kid", header, alg)
			}
			want := map[string]string{
				"aud":     `"jitsi"`,
				"iss":     `"my-app"`,
				"sub":     `"acme"`,
				"room":    `"caf%c3%a9%20booking%2012"`,
				"exp":     "1796328000", // testNow + 2h
				"nbf":     "1796320770", // testNow - 30s
				"iat":     "1796320800",
				"context": `{"user":{"id":"42","name":"John \"JD\" Doe","email":"john@example.com","avatar":"https://example.com/a.png","moderator":"true","affiliation":"owner"}}`,
				"jti":     `"` + link.TokenID + `"`,
			}
			for k, w := range want {
				if got := string(claims[k]); got != w {
					t.Errorf("claim %s = %s; want %s", k, got, w)
				}
			}
			if len(claims) != len(want) {
				t.Errorf("claims = %v; want exactly %d claims", claims, len(want))
			}
			if len(link.TokenID) != 22 {
				t.Errorf("jti %q is not 128 random bits in base64url", link.TokenID)
			}
			if !link.Signed || !link.Moderator || link.Room != "caf%c3%a9%20booking%2012" || link.Tenant != "acme" ||
				!link.ExpiresAt.Equal(testNow.Add(2*time.Hour)) || link.Algorithm != alg {
				t.Errorf("link = %+v", link)
			}
			wantURL := "https://meet.example.com/acme/caf%c3%a9%20booking%2012?jwt=" + link.Token
			if link.URL != wantURL {
				t.Errorf("URL = %q; want %q", link.URL, wantURL)
			}
			m, err := ParseMeetingURL(link.URL)
			if err != nil || m.Room != link.Room || m.Tenant != "acme" || m.Token != link.Token {
				t.Errorf("ParseMeetingURL(%q) = %+v, %v; want the link's room, tenant and token", link.URL, m, err)
			}
		})
	}
}

func TestIssueClaimForms(t *testing.T) {
	tests := []struct {
		name        string
		mutate      func(*Config)
		role        Role
		wantContext string
		wantTop     string
		wantURL     string
	}{
		{
			name:        "participant, string moderator",
			role:        RoleParticipant,
			wantContext: `{"user":{"name":"Ann","moderator":"false","affiliation":"member"}}`,
		},
		{
			name:        "default role is participant",
			wantContext: `{"user":{"name":"Ann","moderator":"false","affiliation":"member"}}`,
		},
		{
			name:        "boolean moderator",
			mutate:      func(c *Config) { c.ModeratorForm = ModeratorBool },
			role:        RoleModerator,
			wantContext: `{"user":{"name":"Ann","moderator":true,"affiliation":"owner"}}`,
		},
		{
			name:        "top-level moderator for token_moderation",
			mutate:      func(c *Config) { c.TopLevelModerator = true },
			role:        RoleModerator,
			wantContext: `{"user":{"name":"Ann","moderator":"true","affiliation":"owner"}}`,
			wantTop:     "true",
		},
		{
			name:        "token in fragment",
			mutate:      func(c *Config) { c.TokenPlacement = TokenInFragment },
			wantContext: `{"user":{"name":"Ann","moderator":"false","affiliation":"member"}}`,
			wantURL:     "https://meet.example.com/room-1#jwt=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := newTestIssuer(t, tt.mutate, "HS256")
			link, err := is.Issue(LinkRequest{Room: "room-1", User: User{Name: "Ann"}, Role: tt.role})
			if err != nil {
				t.Fatal(err)
			}
			_, claims := verify(t, link.Token, "HS256", testNow)
			if got := string(claims["context"]); got != tt.wantContext {
				t.Errorf("context = %s; want %s", got, tt.wantContext)
			}
			if got := string(claims["moderator"]); got != tt.wantTop {
				t.Errorf("top-level moderator = %q; want %q", got, tt.wantTop)
			}
			if got := string(claims["sub"]); got != `"meet.example.com"` {
				t.Errorf("sub = %s; want the configured subject", got)
			}
			if got := string(claims["exp"]); got != "1796407200" {
				t.Errorf("exp = %s; want the default TTL of 24h", got)
			}
			if tt.wantURL != "" && link.URL != tt.wantURL+link.Token {
				t.Errorf("URL = %q; want %q", link.URL, tt.wantURL+link.Token)
			}
		})
	}
}

func TestIssueKeyID(t *testing.T) {
	s, err := NewHMACSigner("HS256", testSecret, "key-2026")
	if err != nil {
		t.Fatal(err)
	}
	is, err := NewIssuer(testConfig(), s)
	if err != nil {
		t.Fatal(err)
	}
	link, err := is.Issue(LinkRequest{Room: "r", User: User{Name: "A"}})
	if err != nil {
		t.Fatal(err)
	}
	header, _ := verify(t, link.Token, "HS256", testNow)
	if header["kid"] != "key-2026" || link.KeyID != "key-2026" {
		t.Errorf("kid = %v, link.KeyID = %q; want key-2026", header["kid"], link.KeyID)
	}
}

func TestIssueNotBeforeIsBackdated(t *testing.T) {
	is := newTestIssuer(t, nil, "HS256")
	link, err := is.Issue(LinkRequest{Room: "r", User: User{Name: "A"}})
	if err != nil {
		t.Fatal(err)
	}
	// A Jitsi server whose clock is 20 s behind ours still accepts the token.
	verify(t, link.Token, "HS256", testNow.Add(-20*time.Second))
}

func TestIssueUnsigned(t *testing.T) {
	is := newTestIssuer(t, nil, "")
	tests := []struct {
		user, tenant, want string
	}{
		{"John Doe", "", `https://meet.example.com/booking-123-abc#userInfo.displayName="John%20Doe"`},
		{`Zoë "Z" O'Neil & Co`, "acme", `https://meet.example.com/acme/booking-123-abc#userInfo.displayName="Zo%C3%AB%20%5C%22Z%5C%22%20O'Neil%20%26%20Co"`},
	}
	for _, tt := range tests {
		link, err := is.Issue(LinkRequest{Room: "Booking-123-abc", Tenant: tt.tenant, User: User{Name: tt.user}, Role: RoleModerator})
		if err != nil {
			t.Fatal(err)
		}
		if link.URL != tt.want || link.Signed || link.Token != "" || link.TokenID != "" || !link.ExpiresAt.IsZero() {
			t.Errorf("Issue(%q) = %+v; want unsigned URL %s", tt.user, link, tt.want)
		}
	}
}

func TestIssueRefuses(t *testing.T) {
	is := newTestIssuer(t, nil, "HS256")
	ok := LinkRequest{Room: "r", User: User{Name: "Ann"}}
	tests := []struct {
		name   string
		mutate func(*LinkRequest)
		field  string
		code   Code
	}{
		{"no name", func(r *LinkRequest) { r.User.Name = "" }, "user.name", CodeMissingField},
		{"blank name", func(r *LinkRequest) { r.User.Name = " \t" }, "user.name", CodeMissingField},
		{"name with newline", func(r *LinkRequest) { r.User.Name = "Ann\r\nX-Injected: 1" }, "user.name", CodeInvalidField},
		{"name with NUL", func(r *LinkRequest) { r.User.Name = "A\x00" }, "user.name", CodeInvalidField},
		{"name too long", func(r *LinkRequest) { r.User.Name = strings.Repeat("a", 10000) }, "user.name", CodeTooLong},
		{"id too long", func(r *LinkRequest) { r.User.ID = strings.Repeat("1", 257) }, "user.id", CodeTooLong},
		{"email without at", func(r *LinkRequest) { r.User.Email = "john.example.com" }, "user.email", CodeInvalidField},
		{"email with name", func(r *LinkRequest) { r.User.Email = "John <john@example.com>" }, "user.email", CodeInvalidField},
		{"javascript avatar", func(r *LinkRequest) { r.User.Avatar = "javascript:alert(1)" }, "user.avatar", CodeInvalidField},
		{"data avatar", func(r *LinkRequest) { r.User.Avatar = "data:image/png;base64,AAAA" }, "user.avatar", CodeInvalidField},
		{"relative avatar", func(r *LinkRequest) { r.User.Avatar = "/a.png" }, "user.avatar", CodeInvalidField},
		{"avatar with credentials", func(r *LinkRequest) { r.User.Avatar = "https://u:p@example.com/a.png" }, "user.avatar", CodeInvalidField},
		{"bad role", func(r *LinkRequest) { r.Role = "owner" }, "role", CodeInvalidRole},
		{"ttl too short", func(r *LinkRequest) { r.TTL = time.Second }, "ttl_seconds", CodeTTLOutOfRange},
		{"ttl negative", func(r *LinkRequest) { r.TTL = -time.Hour }, "ttl_seconds", CodeTTLOutOfRange},
		{"ttl above max", func(r *LinkRequest) { r.TTL = 25 * time.Hour }, "ttl_seconds", CodeTTLOutOfRange},
		{"bad tenant", func(r *LinkRequest) { r.Tenant = "a/b" }, "tenant", CodeInvalidTenant},
		{"wildcard room", func(r *LinkRequest) { r.Room = "*" }, "room", CodeRoomNotJoinable},
		{"no room", func(r *LinkRequest) { r.Room = "" }, "room", CodeMissingField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ok
			tt.mutate(&req)
			link, err := is.Issue(req)
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != tt.field || ie.Code != tt.code {
				t.Fatalf("Issue() error = %v; want InputError %s on %s", err, tt.code, tt.field)
			}
			if link != (Link{}) {
				t.Errorf("Issue() returned a partial link %+v with its error", link)
			}
			if strings.Contains(ie.Message, string(testSecret)) || len(ie.Message) > 200 {
				t.Errorf("message %q is too long or leaks the secret", ie.Message)
			}
		})
	}
}

// TestIssueURLRoundTripGenerated issues links for many generated room names
// and reads each URL back the web client's way: the room it leads to is the
// token's room claim, and the tenant is its sub.
func TestIssueURLRoundTripGenerated(t *testing.T) {
	is := newTestIssuer(t, nil, "HS256")
	pool := []rune("abcXYZ019 -_.~éÉßİΣσÅ\u0301Ａ１ﬁ②会議😀\u200d%/'()&")
	rng := rand.New(rand.NewPCG(5, 6))
	issued := 0
	for i := 0; i < 3000; i++ {
		rs := make([]rune, 1+rng.IntN(10))
		for j := range rs {
			rs[j] = pool[rng.IntN(len(pool))]
		}
		link, err := is.Issue(LinkRequest{Room: string(rs), Tenant: "Tenant1", User: User{Name: "A"}})
		if err != nil {
			continue
		}
		issued++
		_, claims := verify(t, link.Token, "HS256", testNow)
		var room, sub string
		_ = json.Unmarshal(claims["room"], &room)
		_ = json.Unmarshal(claims["sub"], &sub)
		m, err := ParseMeetingURL(link.URL)
		if err != nil || m.Room != room || m.Tenant != sub {
			t.Fatalf("room %q: URL %q leads to room %q tenant %q; token says room %q sub %q", string(rs), link.URL, m.Room, m.Tenant, room, sub)
		}
	}
	if issued < 500 {
		t.Fatalf("only %d links issued from 3000 names", issued)
	}
}

func TestNewIssuerRefusesBadConfig(t *testing.T) {
	s, _ := NewHMACSigner("HS256", testSecret, "")
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"path in base URL", func(c *Config) { c.BaseURL = "https://meet.example.com/acme" }, "must be scheme://host[:port] only"},
		{"ftp base URL", func(c *Config) { c.BaseURL = "ftp://meet.example.com" }, "must start with https:// or http://"},
		{"no host", func(c *Config) { c.BaseURL = "https://" }, "has no host"},
		{"quote in base URL", func(c *Config) { c.BaseURL = `https://meet".example.com` }, "printable ASCII"},
		{"non-ASCII base URL", func(c *Config) { c.BaseURL = "https://méet.example.com" }, "printable ASCII"},
		{"no app id", func(c *Config) { c.AppID = "" }, "AppID"},
		{"default above max", func(c *Config) { c.DefaultTTL = 48 * time.Hour }, "DefaultTTL"},
		{"negative skew", func(c *Config) { c.ClockSkew = -time.Second }, "ClockSkew"},
	}
	for _, tt := range tests {
		cfg := testConfig()
		tt.mutate(&cfg)
		if _, err := NewIssuer(cfg, s); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: NewIssuer() error = %v; want one mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestNewHMACSigner(t *testing.T) {
	if _, err := NewHMACSigner("HS256", testSecret[:31], ""); err == nil {
		t.Error("NewHMACSigner accepted a 31-byte secret")
	}
	for _, alg := range []string{"RS256", "none", "ES256", "hs256"} {
		if _, err := NewHMACSigner(alg, testSecret, ""); err == nil {
			t.Errorf("NewHMACSigner(%q) accepted the algorithm", alg)
		}
	}
	s, err := NewHMACSigner("HS256", testSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), string(testSecret)) {
		t.Error("HMACSigner.String leaks the secret")
	}
}

func BenchmarkIssue(b *testing.B) {
	is := newTestIssuer(b, func(c *Config) { c.Now = time.Now }, "HS256")
	req := LinkRequest{Room: "Booking-123-abc", Tenant: "acme", User: User{ID: "42", Name: "John Doe", Email: "john@example.com"}, Role: RoleModerator}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Issue(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenBuilder measures claims to compact JWS alone.
func BenchmarkTokenBuilder(b *testing.B) {
	s, err := NewHMACSigner("HS256", testSecret, "")
	if err != nil {
		b.Fatal(err)
	}
	c := Claims{Audience: "jitsi", Issuer: "my-app", Subject: "acme", Room: "booking-123-abc",
		ExpiresAt: 1796320800, NotBefore: 1796313570, IssuedAt: 1796313600, ID: "HJQlRowaqaoEV4nYKfHdVg",
		User: UserClaims{ID: "42", Name: "John Doe", Email: "john@example.com", Moderator: true, Affiliation: "owner"}}
	var buf [1024]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(c.AppendJSON(buf[:0])); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzPlainEmail checks that the fast path accepts only addresses net/mail
// accepts as plain addresses.
func FuzzPlainEmail(f *testing.F) {
	for _, s := range []string{"a@b.c", "john.doe+x@example.com", ".a@b", "a..b@c", "a@b@c", "\"q\"@x", "a@[1.2.3.4]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainEmail(s) {
			return
		}
		addr, err := mail.ParseAddress(s)
		if err != nil || addr.Name != "" || addr.Address != s {
			t.Fatalf("plainEmail(%q) = true; net/mail: %v, %+v", s, err, addr)
		}
	})
}

// FuzzASCIIRoom checks that the ASCII fast path agrees with the full
// derivation.
func FuzzASCIIRoom(f *testing.F) {
	for _, s := range []string{"Booking-123", "a b", " a", "a ", ".", "..", "A~_.-9", "x%y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := asciiRoom(s)
		if !ok {
			return
		}
		full, err := slowRoom(s)
		if err != nil || full != fast {
			t.Fatalf("asciiRoom(%q) = %q; the full derivation gives %q, %v", s, fast, full, err)
		}
	})
}
