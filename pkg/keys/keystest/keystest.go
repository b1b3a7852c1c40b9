// Package keystest provides RSA signing keys for tests and tools that
// exercise a key folder: keys are generated once per process, since 2048-bit
// generation is slow (and slower still under the race detector).
package keystest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
)

// keys are generated on first use.
var keys = sync.OnceValue(func() []*rsa.PrivateKey {
	out := make([]*rsa.PrivateKey, 3)
	for i := range out {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		out[i] = k
	}
	return out
})

// Keys returns three distinct 2048-bit RSA keys, the same on every call.
func Keys() []*rsa.PrivateKey { return keys() }

// PKCS1 encodes k as an "RSA PRIVATE KEY" PEM block.
func PKCS1(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// PKCS8 encodes k as a "PRIVATE KEY" PEM block.
func PKCS8(k *rsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFolder writes Keys()[0] as dir/<name>.pem (PKCS#8), creating dir: a
// key folder with one key, which is then active.
func WriteFolder(dir, name string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".pem"), PKCS8(Keys()[0]), 0o600)
}
