package jitsi

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"unsafe"

	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
)

// Signer turns a JSON claims set into a compact JWS. Implementations prepare
// everything that does not depend on the claims (parsed keys, the encoded
// protected header) when they are built, so that Sign only signs. A Signer
// is safe for concurrent use.
type Signer interface {
	// Algorithm is the JWS "alg" the signer writes, for example "HS256".
	Algorithm() string
	// KeyID is the "kid" header the signer writes, or "" when it writes none.
	KeyID() string
	// Sign returns the compact serialisation of a JWS over claims. It must
	// not keep claims, whose buffer is reused.
	Sign(claims []byte) (string, error)
}

// KeyedSigner is a Signer whose key can change between calls, such as a
// rotating key set. SignKeyed reports the kid of the key that signed, which
// KeyID, called separately, might not.
type KeyedSigner interface {
	Signer
	SignKeyed(claims []byte) (token, kid string, err error)
}

// signKeyed signs with s and reports the kid of the key that signed.
func signKeyed(s Signer, claims []byte) (string, string, error) {
	if ks, ok := s.(KeyedSigner); ok {
		return ks.SignKeyed(claims)
	}
	token, err := s.Sign(claims)
	return token, s.KeyID(), err
}

// MinSecretBytes is the shortest HMAC secret accepted: RFC 7518 requires a
// key at least as long as the hash output, 32 bytes for HS256.
const MinSecretBytes = 32

// hmacHashes maps the HMAC algorithms Jitsi's Prosody plugins accept to
// their hash functions.
var hmacHashes = map[string]func() hash.Hash{
	"HS256": sha256.New,
	"HS384": sha512.New384,
	"HS512": sha512.New,
}

// HMACSigner signs with a shared secret (HS256, HS384 or HS512), the
// secret Prosody knows as app_secret.
type HMACSigner struct {
	alg    string
	kid    string
	secret []byte
	hash   func() hash.Hash
	// prefix is base64url(protected header) followed by '.', built once.
	prefix []byte
	sigLen int
}

// NewHMACSigner returns a signer for alg ("HS256", "HS384" or "HS512") with
// secret, writing kid into the header when it is not empty. The secret is
// copied.
func NewHMACSigner(alg string, secret []byte, kid string) (*HMACSigner, error) {
	h, ok := hmacHashes[alg]
	if !ok {
		return nil, fmt.Errorf("jitsi: %q is not an HMAC algorithm Jitsi accepts (HS256, HS384, HS512)", alg)
	}
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("jitsi: the HMAC secret is %d bytes; at least %d are required", len(secret), MinSecretBytes)
	}
	prefix, err := encodeHeader(alg, kid)
	if err != nil {
		return nil, err
	}
	return &HMACSigner{
		alg:    alg,
		kid:    kid,
		secret: append([]byte(nil), secret...),
		hash:   h,
		prefix: prefix,
		sigLen: base64.RawURLEncoding.EncodedLen(h().Size()),
	}, nil
}

// Algorithm implements Signer.
func (s *HMACSigner) Algorithm() string { return s.alg }

// KeyID implements Signer.
func (s *HMACSigner) KeyID() string { return s.kid }

// Sign implements Signer.
func (s *HMACSigner) Sign(claims []byte) (string, error) {
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(s.prefix)+enc.EncodedLen(len(claims))+1+s.sigLen)
	buf = append(buf, s.prefix...)
	buf = enc.AppendEncode(buf, claims)
	sig, err := jwsbb.SignHMAC(s.secret, buf, s.hash)
	if err != nil {
		return "", fmt.Errorf("jitsi: sign %s: %w", s.alg, err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return bytesToString(buf), nil
}

// String keeps the secret out of logs and error messages.
func (s *HMACSigner) String() string { return "HMACSigner(" + s.alg + ", [redacted])" }

// protectedHeader is the JOSE header of every token: the fields Prosody
// reads, in a fixed order.
type protectedHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ"`
}

// encodeHeader returns base64url(header) followed by '.', the part of every
// token that does not change between requests.
func encodeHeader(alg, kid string) ([]byte, error) {
	raw, err := json.Marshal(protectedHeader{Alg: alg, Kid: kid, Typ: "JWT"})
	if err != nil {
		return nil, fmt.Errorf("jitsi: encode header: %w", err)
	}
	enc := base64.RawURLEncoding
	out := enc.AppendEncode(make([]byte, 0, enc.EncodedLen(len(raw))+1), raw)
	return append(out, '.'), nil
}

// bytesToString returns b as a string without copying it. b must never be
// written again; the signers build each token in a buffer of its own.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
