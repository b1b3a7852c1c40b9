package server

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/jitsi-signer/jitsi-signer/pkg/keys"
)

// PublicKeys is the source of the published keys: a *keys.KeySet.
type PublicKeys interface {
	Snapshot() *keys.Snapshot
}

// Cache lifetimes of the public-key endpoints. A kid names one key for
// ever, so a key file may be cached; the key set changes with rotation, so
// it is cached briefly. A 404 is never cached: the kid may be published
// next.
const (
	keyFileMaxAge = 3600
	jwksMaxAge    = 300
)

// JWKSPath is where the JSON Web Key Set is served.
const JWKSPath = "/.well-known/jwks.json"

// mountKeys adds GET /keys/<hex(sha256(kid))>.pem, the URL Prosody's
// asap_key_server client fetches, and GET /.well-known/jwks.json. Both
// serve public keys only and need no authentication.
func (a *api) mountKeys(r chi.Router, ks PublicKeys) {
	pemHandler := func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "file")
		hash, ok := strings.CutSuffix(name, ".pem")
		var key keys.PublicKey
		if ok && isLowerHex64(hash) {
			key, ok = ks.Snapshot().ByKIDHash(hash)
		} else {
			ok = false
		}
		if !ok {
			writeProblem(w, &apiError{status: http.StatusNotFound, code: CodeNotFound,
				detail: "no published key has this id; keys are served as /keys/<hex(sha256(kid))>.pem"})
			return
		}
		writePublic(w, r, "application/x-pem-file", keyFileMaxAge, key.PEM)
	}
	jwksHandler := func(w http.ResponseWriter, r *http.Request) {
		writePublic(w, r, "application/json", jwksMaxAge, ks.Snapshot().JWKS)
	}
	r.Get("/keys/{file}", pemHandler)
	r.Head("/keys/{file}", pemHandler)
	r.Get(JWKSPath, jwksHandler)
	r.Head(JWKSPath, jwksHandler)
}

// writePublic writes a cacheable public document.
func writePublic(w http.ResponseWriter, r *http.Request, contentType string, maxAge int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(maxAge))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
