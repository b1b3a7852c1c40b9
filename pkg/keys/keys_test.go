package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jitsi-signer/jitsi-signer/pkg/keys/keystest"
)

var testKeys = keystest.Keys

var pkcs1 = keystest.PKCS1

func pkcs8(t testing.TB, k any) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func write(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func published(s *Snapshot) string {
	var parts []string
	for _, k := range s.Keys {
		p := k.KID
		if k.Active {
			p += "*"
		}
		if k.File == "" {
			p += "(retired)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// verify checks a token from ks against the published PEM of its kid, as
// Prosody does, with an independent JWT library.
func verify(t *testing.T, ks *KeySet, wantKID string) {
	t.Helper()
	token, err := ks.Sign([]byte(`{"iss":"app","exp":4102444800}`))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(token, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		sum := sha256.Sum256([]byte(kid))
		k, ok := ks.Snapshot().ByKIDHash(hex.EncodeToString(sum[:]))
		if !ok {
			return nil, fmt.Errorf("kid %q is not published", kid)
		}
		return jwt.ParseRSAPublicKeyFromPEM(k.PEM)
	}, jwt.WithValidMethods([]string{"RS256"}))
	if err != nil {
		t.Fatalf("token does not verify with the published key: %v", err)
	}
	if kid := parsed.Header["kid"]; kid != wantKID || ks.KeyID() != wantKID {
		t.Errorf("token kid = %v, KeyID() = %q; want %q", kid, ks.KeyID(), wantKID)
	}
	if parsed.Header["typ"] != "JWT" {
		t.Errorf("typ = %v; want JWT", parsed.Header["typ"])
	}
}

// TestRotation steps the clock through two rotations: add a next key,
// promote it, remove the old one, and watch the old key stay published
// until every token it signed has expired.
func TestRotation(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	const maxTTL = 24 * time.Hour
	write(t, dir, "k1.pem", pkcs1(k[0]))
	ks, err := Load(Options{Dir: dir, Algorithm: "RS256", MaxTTL: maxTTL, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		change  func()
		advance time.Duration
		want    string
		active  string
	}{
		{name: "one key is active", want: "k1*", active: "k1"},
		{name: "add next", change: func() { write(t, dir, "k2.pem", pkcs8(t, k[1])); write(t, dir, "active", []byte("k1\n")) }, want: "k1* k2", active: "k1"},
		{name: "promote", change: func() { write(t, dir, "active", []byte("k2.pem")) }, want: "k1 k2*", active: "k2"},
		{name: "retire", change: func() { remove(t, dir, "k1.pem") }, want: "k1(retired) k2*", active: "k2"},
		{name: "retired key published until max TTL", advance: maxTTL - time.Second, want: "k1(retired) k2*", active: "k2"},
		{name: "retired key disappears", advance: time.Second, want: "k2*", active: "k2"},
		{name: "second rotation: add next", change: func() { write(t, dir, "k3.pem", pkcs1(k[2])) }, want: "k2* k3", active: "k2"},
		{name: "second rotation: promote", change: func() { write(t, dir, "active", []byte("k3")) }, want: "k2 k3*", active: "k3"},
		{name: "second rotation: retire", change: func() { remove(t, dir, "k2.pem") }, advance: time.Hour, want: "k2(retired) k3*", active: "k3"},
		{name: "second rotation: half way", advance: maxTTL / 2, want: "k2(retired) k3*", active: "k3"},
		{name: "second rotation: expired", advance: maxTTL / 2, want: "k3*", active: "k3"},
	}
	for _, st := range steps {
		if st.change != nil {
			st.change()
			if tried, err := ks.ReloadIfChanged(); !tried || err != nil {
				t.Fatalf("%s: ReloadIfChanged() = %v, %v; want true, nil", st.name, tried, err)
			}
		}
		clk.Add(st.advance)
		ks.Expire()
		if got := published(ks.Snapshot()); got != st.want {
			t.Errorf("%s: published = %q; want %q", st.name, got, st.want)
		}
		verify(t, ks, st.active)
	}
	if tried, err := ks.ReloadIfChanged(); tried || err != nil {
		t.Errorf("ReloadIfChanged() with an unchanged folder = %v, %v; want false, nil", tried, err)
	}
}

func TestRetiredKeyComesBack(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	clk := &clock{t: time.Unix(1e9, 0)}
	write(t, dir, "a.pem", pkcs1(k[0]))
	write(t, dir, "b.pem", pkcs1(k[1]))
	write(t, dir, "active", []byte("b"))
	ks, err := Load(Options{Dir: dir, Algorithm: "RS256", MaxTTL: time.Hour, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	remove(t, dir, "a.pem")
	if err := ks.Reload(); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "a.pem", pkcs1(k[0]))
	if err := ks.Reload(); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	ks.Expire()
	if got := published(ks.Snapshot()); got != "a b*" {
		t.Errorf("published = %q; want %q: a key back in the folder is not retired", got, "a b*")
	}
}

// TestFailedReloadKeepsKeys breaks the folder in each way a reload can fail
// and checks that the keys in use stay, and that the error names the file.
func TestFailedReloadKeepsKeys(t *testing.T) {
	k := testKeys()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&k[1].PublicKey))})
	tests := []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{name: "not PEM", files: map[string][]byte{"k2.pem": []byte("hello")}, want: "k2.pem holds no PEM block"},
		{name: "weak key", files: map[string][]byte{"k2.pem": pkcs1(weak)}, want: "k2.pem holds a 1024-bit RSA key; at least 2048 bits are required"},
		{name: "EC key", files: map[string][]byte{"k2.pem": pkcs8(t, ec)}, want: "k2.pem holds a ECDSA key; Jitsi verifies RSA keys only"},
		{name: "public key", files: map[string][]byte{"k2.pem": pubPEM}, want: "k2.pem holds a PUBLIC KEY, not a private key"},
		{name: "two blocks", files: map[string][]byte{"k2.pem": append(pkcs1(k[1]), pkcs1(k[2])...)}, want: "k2.pem holds more than one PEM block; put one key in each file"},
		{name: "bad name", files: map[string][]byte{"k 2.pem": pkcs1(k[1])}, want: "k 2.pem: a key's file name must be letters"},
		{name: "no active", files: map[string][]byte{"k2.pem": pkcs1(k[1])}, want: `holds 2 keys and no file named "active" naming the one that signs`},
		{name: "active names a missing key", files: map[string][]byte{"active": []byte("k9")}, want: `active names "k9", which is not a key file (k9.pem) in the folder`},
		{name: "kid reused for another key", files: map[string][]byte{"k1.pem": pkcs1(k[2])}, want: `k1.pem holds a different key than kid "k1" had`},
		{name: "unreadable", files: map[string][]byte{"k2.pem": nil}, want: "k2.pem cannot be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "k1.pem", pkcs1(k[0]))
			ks, err := Load(Options{Dir: dir, Algorithm: "RS256", MaxTTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			before := ks.Snapshot()
			for name, data := range tt.files {
				if data == nil {
					if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, name)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				write(t, dir, name, data)
			}
			tried, err := ks.ReloadIfChanged()
			if !tried || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReloadIfChanged() = %v, %v; want an error containing %q", tried, err, tt.want)
			}
			if ks.Snapshot() != before {
				t.Error("a failed reload changed the keys")
			}
			verify(t, ks, "k1")
			for _, secret := range []string{string(pkcs1(k[1])), string(pkcs1(k[2])), "MII"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error quotes key material: %v", err)
				}
			}
			// A start-up with the same folder fails with the same message.
			if _, err := Load(Options{Dir: dir, Algorithm: "RS256", MaxTTL: time.Hour}); err == nil && tt.name != "kid reused for another key" {
				t.Error("Load() accepted the broken folder")
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(Options{Dir: dir, Algorithm: "RS256", MaxTTL: time.Hour}); err == nil || err.Error() != dir+" holds no key file (<name>.pem)" {
		t.Errorf("Load(empty folder) = %v", err)
	}
	if _, err := Load(Options{Dir: filepath.Join(dir, "nope"), Algorithm: "RS256"}); err == nil || !strings.HasSuffix(err.Error(), "nope cannot be read: no such file or directory") {
		t.Errorf("Load(missing folder) = %v", err)
	}
	if _, err := Load(Options{Dir: dir, Algorithm: "HS256"}); err == nil {
		t.Error("Load(HS256) succeeded")
	}
	write(t, dir, "a.pem", []byte("x"))
	write(t, dir, "b.pem", []byte("y"))
	_, err := Load(Options{Dir: dir, Algorithm: "RS256"})
	if err == nil || !strings.Contains(err.Error(), "a.pem holds no PEM block") || !strings.Contains(err.Error(), "b.pem holds no PEM block") {
		t.Errorf("Load(two bad files) = %v; want both named", err)
	}
}

// TestKubernetesSecretSwap lays the folder out as a Kubernetes secret
// volume (visible names are links through ..data) and swaps ..data.
func TestKubernetesSecretSwap(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	v1 := filepath.Join(dir, "..2026_01_01_v1")
	v2 := filepath.Join(dir, "..2026_02_01_v2")
	for _, v := range []string{v1, v2} {
		if err := os.Mkdir(v, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write(t, v1, "k1.pem", pkcs1(k[0]))
	write(t, v1, "k2.pem", pkcs1(k[1]))
	write(t, v1, "active", []byte("k1"))
	write(t, v2, "k1.pem", pkcs1(k[0]))
	write(t, v2, "k2.pem", pkcs1(k[1]))
	write(t, v2, "active", []byte("k2"))
	link := func(target string) {
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(target), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	link(v1)
	for _, name := range []string{"k1.pem", "k2.pem", "active"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	ks, err := Load(Options{Dir: dir, Algorithm: "RS256", MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, ks, "k1")
	link(v2)
	if tried, err := ks.ReloadIfChanged(); !tried || err != nil {
		t.Fatalf("ReloadIfChanged() after the swap = %v, %v", tried, err)
	}
	verify(t, ks, "k2")
}

func TestJWKSAndKIDPrefix(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	write(t, dir, "4f4910.pem", pkcs8(t, k[0]))
	const app = "vpaas-magic-cookie-1fc542a3e4414a44b2611668195e2bfe"
	ks, err := Load(Options{Dir: dir, Algorithm: "RS256", KIDPrefix: app + "/", MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, ks, app+"/4f4910")
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(ks.Snapshot().JWKS, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS = %s; want one key", ks.Snapshot().JWKS)
	}
	got := set.Keys[0]
	if got["kid"] != app+"/4f4910" || got["alg"] != "RS256" || got["use"] != "sig" || got["kty"] != "RSA" || got["n"] == nil || got["e"] != "AQAB" {
		t.Errorf("JWK = %v", got)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := got[private]; ok {
			t.Errorf("JWK carries private member %q", private)
		}
	}
	pemText := string(ks.Snapshot().Keys[0].PEM)
	if !strings.HasPrefix(pemText, "-----BEGIN PUBLIC KEY-----\n") || strings.Contains(pemText, "PRIVATE") {
		t.Errorf("PEM = %s", pemText)
	}
	if s := fmt.Sprintf("%v %+v %#v", ks, ks, ks.Snapshot().Keys[0]); strings.Contains(s, k[0].D.String()) {
		t.Error("formatting prints the private exponent")
	}
}

func TestWatch(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	write(t, dir, "k1.pem", pkcs1(k[0]))
	ks, err := Load(Options{Dir: dir, Algorithm: "RS256", MaxTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	force := make(chan struct{})
	reports := make(chan error)
	go ks.Watch(ctx, time.Hour, force, func(err error) { reports <- err })
	write(t, dir, "k2.pem", pkcs1(k[1]))
	write(t, dir, "active", []byte("k2"))
	force <- struct{}{}
	if err := <-reports; err != nil {
		t.Fatalf("forced reload: %v", err)
	}
	verify(t, ks, "k2")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
