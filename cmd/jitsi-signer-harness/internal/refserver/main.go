// Command refserver is a reference for jitsi-signer's performance
// comparisons: a plain Go HTTP server answering POST /v1/links with the same
// request and response shapes, either signing the same Jitsi token the
// straightforward way (golang-jwt with map claims), signing it with
// crypto/rsa directly (RS256, the floor for RSA signing), or not signing at
// all (a fixed answer). It has no authentication, policy, metrics or
// logging.
package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

type linkRequest struct {
	Room   string `json:"room"`
	Tenant string `json:"tenant"`
	User   struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Email  string `json:"email"`
		Avatar string `json:"avatar"`
	} `json:"user"`
	Role       string `json:"role"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

type linkResponse struct {
	URL       string `json:"url"`
	Token     string `json:"token,omitempty"`
	Room      string `json:"room"`
	Tenant    string `json:"tenant"`
	Moderator bool   `json:"moderator"`
	Signed    bool   `json:"signed"`
	TokenID   string `json:"token_id,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

func main() {
	mode := flag.String("mode", "golang-jwt", "golang-jwt (HS256 with map claims), rsa (RS256 with crypto/rsa) or none (fixed answer)")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	secret := []byte(os.Getenv("JITSI_API_KEY"))
	if *mode == "golang-jwt" && len(secret) == 0 {
		log.Fatal("JITSI_API_KEY is required in golang-jwt mode")
	}
	var handler http.HandlerFunc
	switch *mode {
	case "golang-jwt":
		handler = func(w http.ResponseWriter, r *http.Request) { signJWT(w, r, secret) }
	case "rsa":
		key := loadRSAKey(os.Getenv("RSA_KEY_FILE"))
		handler = func(w http.ResponseWriter, r *http.Request) { signRSA(w, r, key) }
	case "none":
		handler = fixed
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "{\"msg\":\"listening\",\"api_addr\":%q,\"admin_addr\":%q}\n", ln.Addr(), ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/links", handler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.Serve(ln))
}

func decode(w http.ResponseWriter, r *http.Request) (linkRequest, bool) {
	var req linkRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return req, false
	}
	return req, true
}

func fixed(w http.ResponseWriter, r *http.Request) {
	req, ok := decode(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(linkResponse{URL: "https://meet.example.com/" + strings.ToLower(req.Room), Room: req.Room})
}

func signJWT(w http.ResponseWriter, r *http.Request, secret []byte) {
	req, ok := decode(w, r)
	if !ok {
		return
	}
	room := strings.ToLower(req.Room)
	moderator := req.Role == "moderator"
	affiliation := "member"
	if moderator {
		affiliation = "owner"
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	jti := base64.RawURLEncoding.EncodeToString(id[:])
	now := time.Now()
	exp := now.Add(time.Duration(req.TTLSeconds) * time.Second)
	claims := jwt.MapClaims{
		"aud":  "jitsi",
		"iss":  os.Getenv("JITSI_APP_ID"),
		"sub":  req.Tenant,
		"room": room,
		"exp":  exp.Unix(),
		"nbf":  now.Add(-30 * time.Second).Unix(),
		"iat":  now.Unix(),
		"jti":  jti,
		"context": map[string]any{
			"user": map[string]any{
				"id":          req.User.ID,
				"name":        req.User.Name,
				"email":       req.User.Email,
				"moderator":   fmt.Sprint(moderator),
				"affiliation": affiliation,
			},
		},
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(linkResponse{
		URL: "https://meet.example.com/" + req.Tenant + "/" + room + "?jwt=" + token, Token: token, Room: room,
		Tenant: req.Tenant, Moderator: moderator, Signed: true, TokenID: jti, ExpiresAt: exp.UTC().Format(time.RFC3339),
	})
}

func loadRSAKey(path string) *rsa.PrivateKey {
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatalf("RSA_KEY_FILE: %v", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		log.Fatal("RSA_KEY_FILE holds no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		k1, err1 := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err1 != nil {
			log.Fatalf("RSA_KEY_FILE: %v", err)
		}
		return k1
	}
	return key.(*rsa.PrivateKey)
}

// signRSA builds the token by hand and signs it with crypto/rsa: the least
// work an RS256 signer can do per token.
func signRSA(w http.ResponseWriter, r *http.Request, key *rsa.PrivateKey) {
	req, ok := decode(w, r)
	if !ok {
		return
	}
	room := strings.ToLower(req.Room)
	moderator := req.Role == "moderator"
	now := time.Now()
	exp := now.Add(time.Duration(req.TTLSeconds) * time.Second)
	var id [16]byte
	_, _ = rand.Read(id[:])
	jti := base64.RawURLEncoding.EncodeToString(id[:])
	payload, _ := json.Marshal(map[string]any{
		"aud": "jitsi", "iss": os.Getenv("JITSI_APP_ID"), "sub": req.Tenant, "room": room,
		"exp": exp.Unix(), "nbf": now.Add(-30 * time.Second).Unix(), "iat": now.Unix(), "jti": jti,
		"context": map[string]any{"user": map[string]any{"id": req.User.ID, "name": req.User.Name, "email": req.User.Email,
			"moderator": fmt.Sprint(moderator), "affiliation": "member"}},
	})
	signing := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	token := signing + "." + base64.RawURLEncoding.EncodeToString(sig)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(linkResponse{
		URL: "https://meet.example.com/" + req.Tenant + "/" + room + "?jwt=" + token, Token: token, Room: room,
		Tenant: req.Tenant, Moderator: moderator, Signed: true, TokenID: jti, ExpiresAt: exp.UTC().Format(time.RFC3339),
	})
}
