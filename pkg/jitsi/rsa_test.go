package jitsi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testRSAKey is generated once: 2048-bit generation is slow under -race.
var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func TestRSASignerVerifiesIndependently(t *testing.T) {
	key := testRSAKey()
	for _, alg := range []string{"RS256", "RS384", "RS512"} {
		s, err := NewRSASigner(alg, key, "k1")
		if err != nil {
			t.Fatal(err)
		}
		token, err := s.Sign([]byte(`{"iss":"app"}`))
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return &key.PublicKey, nil }, jwt.WithValidMethods([]string{alg}))
		if err != nil {
			t.Fatalf("%s: golang-jwt refuses the token: %v", alg, err)
		}
		if parsed.Header["kid"] != "k1" || parsed.Header["typ"] != "JWT" || parsed.Header["alg"] != alg {
			t.Errorf("%s: header = %v", alg, parsed.Header)
		}
		if str := fmt.Sprintf("%v %+v %#v", s, s, s); strings.Contains(str, key.D.String()) {
			t.Errorf("%s: formatting the signer prints the private key", alg)
		}
	}
}

func TestNewRSASignerRefuses(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		alg  string
		key  *rsa.PrivateKey
		want string
	}{
		{"HMAC algorithm", "HS256", testRSAKey(), `jitsi: "HS256" is not an RSA algorithm Jitsi accepts (RS256, RS384, RS512)`},
		{"PSS algorithm", "PS256", testRSAKey(), `jitsi: "PS256" is not an RSA algorithm Jitsi accepts (RS256, RS384, RS512)`},
		{"weak key", "RS256", weak, "jitsi: the RSA key has 1024 bits; at least 2048 are required"},
		{"no key", "RS256", nil, "jitsi: no RSA key"},
	}
	for _, tt := range tests {
		if _, err := NewRSASigner(tt.alg, tt.key, "k"); err == nil || err.Error() != tt.want {
			t.Errorf("%s: NewRSASigner(%s) = %v; want %s", tt.name, tt.alg, err, tt.want)
		}
	}
}

func TestParseRSAPrivateKeyPEM(t *testing.T) {
	key := testRSAKey()
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	enc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	tests := []struct {
		name string
		in   []byte
		want string // "" when accepted
	}{
		{"PKCS#1", enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)), ""},
		{"PKCS#8", enc("PRIVATE KEY", pkcs8), ""},
		{"PKCS#8 EC", enc("PRIVATE KEY", ecDER), "holds a ECDSA key; Jitsi verifies RSA keys only"},
		{"public key", enc("PUBLIC KEY", pub), "holds a PUBLIC KEY, not a private key"},
		{"garbage block", enc("RSA PRIVATE KEY", []byte("nope")), "holds an RSA PRIVATE KEY block that does not parse"},
		{"other block", enc("OPENSSH PRIVATE KEY", []byte("x")), `holds a "OPENSSH PRIVATE KEY" PEM block; want RSA PRIVATE KEY (PKCS#1) or PRIVATE KEY (PKCS#8)`},
		{"not PEM", []byte("hello"), "holds no PEM block"},
	}
	for _, tt := range tests {
		k, err := ParseRSAPrivateKeyPEM(tt.in)
		switch {
		case tt.want == "" && (err != nil || !k.Equal(key)):
			t.Errorf("%s: ParseRSAPrivateKeyPEM = %v; want the key", tt.name, err)
		case tt.want != "" && (err == nil || err.Error() != tt.want):
			t.Errorf("%s: ParseRSAPrivateKeyPEM = %v; want %s", tt.name, err, tt.want)
		}
	}
}

func TestFeatures(t *testing.T) {
	var f Features
	if err := f.Set("recording", true); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("branding", false); err != nil {
		t.Fatal(err)
	}
	err := f.Set("Recording", true)
	var ie *InputError
	if !errors.As(err, &ie) || ie.Code != CodeUnknownFeature || ie.Field != "features.Recording" {
		t.Errorf(`Set("Recording") = %v; want unknown_feature on features.Recording`, err)
	}
	tests := []struct {
		name string
		f    Features
		want string
	}{
		{"request only", f, `{"branding":"false","recording":"true"}`},
		{"over JaaS defaults", f.Over(JaaSFeatureDefaults),
			`{"branding":"false","inbound-call":"false","livestreaming":"false","outbound-call":"false","recording":"true","sip-inbound-call":"false","sip-outbound-call":"false","transcription":"false"}`},
		{"none", Features{}, `{}`},
	}
	for _, tt := range tests {
		if got := string(appendFeatures(nil, tt.f)); got != tt.want {
			t.Errorf("%s: appendFeatures = %s; want %s", tt.name, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = appendFeatures(make([]byte, 0, 512)[:0], f) }); n > 1 {
		t.Errorf("appendFeatures allocates %v times; want at most the buffer", n)
	}
}

func TestClaimsFeaturesAndBypass(t *testing.T) {
	var f Features
	_ = f.Set("lobby", true)
	c := Claims{Audience: "jitsi", Issuer: "i", Subject: "s", Room: "r", User: UserClaims{Name: "N", LobbyBypass: true, SecurityBypass: true}, Features: f}
	var got struct {
		Context struct {
			User     map[string]any    `json:"user"`
			Features map[string]string `json:"features"`
		} `json:"context"`
	}
	if err := json.Unmarshal(c.AppendJSON(nil), &got); err != nil {
		t.Fatalf("AppendJSON = %s: %v", c.AppendJSON(nil), err)
	}
	if got.Context.User["lobby_bypass"] != true || got.Context.User["security_bypass"] != true || got.Context.Features["lobby"] != "true" {
		t.Errorf("AppendJSON = %s", c.AppendJSON(nil))
	}
	c.User.LobbyBypass, c.User.SecurityBypass, c.Features = false, false, Features{}
	if s := string(c.AppendJSON(nil)); strings.Contains(s, "bypass") || strings.Contains(s, "features") {
		t.Errorf("AppendJSON without bypass or features = %s", s)
	}
}

const testJaaSApp = "vpaas-magic-cookie-1fc542a3e4414a44b2611668195e2bfe"

func TestIssueJaaS(t *testing.T) {
	key := testRSAKey()
	s, err := NewRSASigner("RS256", key, testJaaSApp+"/4f4910")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Mode, cfg.BaseURL, cfg.AppID = ModeJaaS, JaaSBaseURL, testJaaSApp
	cfg.ModeratorForm = ModeratorBool // the mode overrides it
	is, err := NewIssuer(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	var f Features
	_ = f.Set("recording", true)
	link, err := is.Issue(LinkRequest{Room: "Team Sync", User: User{ID: "7", Name: "Ann"}, Role: RoleModerator, Features: f})
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://8x8.vc/" + testJaaSApp + "/team%20sync?jwt=" + link.Token; link.URL != want {
		t.Errorf("URL = %s; want %s", link.URL, want)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(link.Token, claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("chat"), jwt.WithAudience("jitsi"), jwt.WithSubject(testJaaSApp),
		jwt.WithTimeFunc(func() time.Time { return testNow }))
	if err != nil {
		t.Fatalf("golang-jwt refuses the JaaS token: %v", err)
	}
	if tok.Header["kid"] != testJaaSApp+"/4f4910" {
		t.Errorf("kid = %v", tok.Header["kid"])
	}
	ctx := claims["context"].(map[string]any)
	user := ctx["user"].(map[string]any)
	features := ctx["features"].(map[string]any)
	if user["moderator"] != "true" || claims["room"] != "team%20sync" || features["recording"] != "true" ||
		features["livestreaming"] != "false" || features["sip-outbound-call"] != "false" || len(features) != 7 {
		t.Errorf("claims = %v", claims)
	}
	if _, err := is.Issue(LinkRequest{Room: "r", Tenant: "acme", User: User{Name: "Ann"}}); err == nil {
		t.Error("JaaS link with a tenant was issued")
	}
}

func TestNewIssuerRefusesBadJaaS(t *testing.T) {
	hs, _ := NewHMACSigner("HS256", testSecret, "")
	cfg := testConfig()
	cfg.Mode, cfg.AppID = ModeJaaS, "my-app"
	_, err := NewIssuer(cfg, hs)
	want := `jitsi: AppID "my-app" is not an 8x8 JaaS AppID (vpaas-magic-cookie-<32 hex digits>)` + "\n" + "jitsi: 8x8 JaaS verifies RS256 only, not HS256"
	if err == nil || err.Error() != want {
		t.Errorf("NewIssuer(bad JaaS) = %v; want %s", err, want)
	}
	for id, want := range map[string]bool{testJaaSApp: true, "vpaas-magic-cookie-": false, strings.ToUpper(testJaaSApp): false, testJaaSApp + "0": false} {
		if got := ValidJaaSAppID(id); got != want {
			t.Errorf("ValidJaaSAppID(%q) = %v; want %v", id, got, want)
		}
	}
}

func BenchmarkIssueRS256(b *testing.B) {
	s, err := NewRSASigner("RS256", testRSAKey(), "k1")
	if err != nil {
		b.Fatal(err)
	}
	is, err := NewIssuer(testConfig(), s)
	if err != nil {
		b.Fatal(err)
	}
	var f Features
	_ = f.Set("recording", true)
	req := LinkRequest{Room: "Booking-123-abc", User: User{ID: "42", Name: "John Doe"}, Role: RoleModerator, Features: f}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Issue(req); err != nil {
			b.Fatal(err)
		}
	}
}
