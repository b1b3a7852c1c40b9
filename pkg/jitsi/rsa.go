package jitsi

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
)

// MinRSABits is the smallest RSA modulus accepted for signing.
const MinRSABits = 2048

// rsaHashes maps the RSA algorithms Jitsi's Prosody plugins accept to their
// hash functions.
var rsaHashes = map[string]crypto.Hash{
	"RS256": crypto.SHA256,
	"RS384": crypto.SHA384,
	"RS512": crypto.SHA512,
}

// IsRSAAlgorithm reports whether alg is RS256, RS384 or RS512.
func IsRSAAlgorithm(alg string) bool { _, ok := rsaHashes[alg]; return ok }

// IsHMACAlgorithm reports whether alg is HS256, HS384 or HS512.
func IsHMACAlgorithm(alg string) bool { _, ok := hmacHashes[alg]; return ok }

// RSASigner signs with an RSA private key (RS256, RS384 or RS512); Prosody
// verifies with the public key it fetches by kid from its asap_key_server.
type RSASigner struct {
	alg  string
	kid  string
	key  *rsa.PrivateKey
	hash crypto.Hash
	// prefix is base64url(protected header) followed by '.', built once.
	prefix []byte
	sigLen int
}

// NewRSASigner returns a signer for alg ("RS256", "RS384" or "RS512") with
// key, writing kid into the header. The key must have at least MinRSABits
// bits and is validated and precomputed here, once.
func NewRSASigner(alg string, key *rsa.PrivateKey, kid string) (*RSASigner, error) {
	h, ok := rsaHashes[alg]
	if !ok {
		return nil, fmt.Errorf("jitsi: %q is not an RSA algorithm Jitsi accepts (RS256, RS384, RS512)", alg)
	}
	if key == nil {
		return nil, errors.New("jitsi: no RSA key")
	}
	if bits := key.N.BitLen(); bits < MinRSABits {
		return nil, fmt.Errorf("jitsi: the RSA key has %d bits; at least %d are required", bits, MinRSABits)
	}
	if err := key.Validate(); err != nil {
		return nil, errors.New("jitsi: the RSA key is not valid")
	}
	key.Precompute()
	prefix, err := encodeHeader(alg, kid)
	if err != nil {
		return nil, err
	}
	return &RSASigner{
		alg:    alg,
		kid:    kid,
		key:    key,
		hash:   h,
		prefix: prefix,
		sigLen: base64.RawURLEncoding.EncodedLen(key.Size()),
	}, nil
}

// Algorithm implements Signer.
func (s *RSASigner) Algorithm() string { return s.alg }

// KeyID implements Signer.
func (s *RSASigner) KeyID() string { return s.kid }

// Public returns the public half of the signing key.
func (s *RSASigner) Public() *rsa.PublicKey { return &s.key.PublicKey }

// Sign implements Signer.
func (s *RSASigner) Sign(claims []byte) (string, error) {
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(s.prefix)+enc.EncodedLen(len(claims))+1+s.sigLen)
	buf = append(buf, s.prefix...)
	buf = enc.AppendEncode(buf, claims)
	sig, err := jwsbb.SignRSA(s.key, buf, s.hash, false, nil)
	if err != nil {
		return "", fmt.Errorf("jitsi: sign %s: %w", s.alg, err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return bytesToString(buf), nil
}

// String keeps the private key out of logs and error messages.
func (s *RSASigner) String() string { return "RSASigner(" + s.alg + ", " + s.kid + ", [redacted])" }

// GoString keeps the private key out of %#v.
func (s *RSASigner) GoString() string { return s.String() }

// ParseRSAPrivateKeyPEM parses one PEM block holding an RSA private key in
// PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY") form. Errors never
// quote the key material.
func ParseRSAPrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("holds no PEM block")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("holds more than one PEM block; put one key in each file")
	}
	if len(block.Headers) > 0 {
		return nil, errors.New("is an encrypted PEM key; store it unencrypted, as a secret")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("holds an RSA PRIVATE KEY block that does not parse")
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("holds a PRIVATE KEY block that does not parse")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("holds a %s key; Jitsi verifies RSA keys only", keyKind(k))
		}
		return rk, nil
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("holds a %s, not a private key", block.Type)
	}
	return nil, fmt.Errorf("holds a %q PEM block; want RSA PRIVATE KEY (PKCS#1) or PRIVATE KEY (PKCS#8)", block.Type)
}

func keyKind(k any) string {
	switch fmt.Sprintf("%T", k) {
	case "*ecdsa.PrivateKey":
		return "ECDSA"
	case "ed25519.PrivateKey":
		return "Ed25519"
	case "*ecdh.PrivateKey":
		return "ECDH"
	}
	return "non-RSA"
}

// PublicKeyPEM returns pub as a PEM "PUBLIC KEY" block (SubjectPublicKeyInfo),
// the form Prosody's key-server client hands to its verifier.
func PublicKeyPEM(pub *rsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("jitsi: encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
