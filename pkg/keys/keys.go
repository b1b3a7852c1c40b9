// Package keys loads RSA signing keys from a folder, signs with the active
// one, and tracks which public keys are published: every key in the folder,
// plus each key removed from it until every token it may have signed has
// expired. A reload swaps the whole set atomically; a reload that fails
// keeps the keys in use.
//
// The folder holds one PEM private key per file. File <name>.pem has kid
// <name> (with a prefix such as "<AppID>/" when one is configured). With a
// single key, that key is active; with several, a file named "active"
// holds the name of the one that signs. Every other key is published only:
// a "next" key waiting to be promoted, or a previous one waiting to be
// removed.
package keys

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

// ActiveFile is the name of the file that names the active key.
const ActiveFile = "active"

// MaxKeyFileBytes caps what is read from one file of the folder.
const MaxKeyFileBytes = 64 << 10

// MaxKeys caps how many key files the folder may hold, so that the kid
// label of the tokens-signed metric stays bounded.
const MaxKeys = 32

// Options configure a KeySet.
type Options struct {
	// Dir is the folder of PEM private keys.
	Dir string
	// Algorithm is RS256, RS384 or RS512.
	Algorithm string
	// KIDPrefix is put before each file's name to make its kid, for
	// example "vpaas-magic-cookie-…/" for 8x8 JaaS; usually empty.
	KIDPrefix string
	// MaxTTL is the longest lifetime of a token: a key removed from the
	// folder stays published this long.
	MaxTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// PublicKey is one published key.
type PublicKey struct {
	KID string
	// KIDHash is hex(sha256(kid)), the file name Prosody asks for.
	KIDHash string
	Alg     string
	Public  *rsa.PublicKey
	// PEM is the SubjectPublicKeyInfo PEM that Prosody fetches.
	PEM []byte
	// File is the key's file name, or "" once removed from the folder.
	File string
	// Active reports whether the key signs new tokens.
	Active bool
	// RetiredUntil is when a removed key stops being published; zero for
	// keys in the folder.
	RetiredUntil time.Time
}

// Snapshot is one loaded state of the key set. It is immutable.
type Snapshot struct {
	// Keys are the published keys, ordered by kid.
	Keys []PublicKey
	// JWKS is the JSON Web Key Set of Keys, ready to serve.
	JWKS []byte
	// ActiveKID is the kid of the key that signs.
	ActiveKID string
	// ActiveModTime is the modification time of the active key's file.
	ActiveModTime time.Time

	signer *jitsi.RSASigner
	byHash map[string]int
}

// ByKIDHash returns the published key whose hex(sha256(kid)) is h.
func (s *Snapshot) ByKIDHash(h string) (PublicKey, bool) {
	i, ok := s.byHash[h]
	if !ok {
		return PublicKey{}, false
	}
	return s.Keys[i], true
}

// KeySet is a rotating set of RSA signing keys. It implements jitsi.Signer
// with the active key and is safe for concurrent use.
type KeySet struct {
	opts Options
	now  func() time.Time
	cur  atomic.Pointer[Snapshot]

	// mu serialises reloads; lastDigest is the folder content last tried.
	mu         sync.Mutex
	lastDigest [32]byte
}

// Load reads the folder and returns a KeySet, or an error that names every
// file at fault.
func Load(opts Options) (*KeySet, error) {
	if !jitsi.IsRSAAlgorithm(opts.Algorithm) {
		return nil, fmt.Errorf("%q is not an RSA algorithm (RS256, RS384, RS512)", opts.Algorithm)
	}
	ks := &KeySet{opts: opts, now: opts.Now}
	if ks.now == nil {
		ks.now = time.Now
	}
	if _, err := ks.reload(true); err != nil {
		return nil, err
	}
	return ks, nil
}

// Algorithm implements jitsi.Signer.
func (ks *KeySet) Algorithm() string { return ks.opts.Algorithm }

// KeyID implements jitsi.Signer: the active key's kid.
func (ks *KeySet) KeyID() string { return ks.cur.Load().ActiveKID }

// Sign implements jitsi.Signer with the active key.
func (ks *KeySet) Sign(claims []byte) (string, error) { return ks.cur.Load().signer.Sign(claims) }

// SignKeyed implements jitsi.KeyedSigner: it signs with the active key and
// reports its kid, even when a reload swaps keys meanwhile.
func (ks *KeySet) SignKeyed(claims []byte) (string, string, error) {
	s := ks.cur.Load()
	token, err := s.signer.Sign(claims)
	return token, s.ActiveKID, err
}

// Snapshot returns the current state.
func (ks *KeySet) Snapshot() *Snapshot { return ks.cur.Load() }

// String describes the set without key material.
func (ks *KeySet) String() string {
	s := ks.cur.Load()
	return fmt.Sprintf("KeySet(%s, active %q, %d published)", ks.opts.Algorithm, s.ActiveKID, len(s.Keys))
}

// Reload reads the folder again and swaps the keys in. On error the
// current keys stay in use.
func (ks *KeySet) Reload() error {
	_, err := ks.reload(true)
	return err
}

// ReloadIfChanged reloads when the folder's content differs from the last
// content tried, and reports whether it tried. A folder whose files stay
// broken is reported once, not at every call; one that cannot be read is
// reported at every call until it can.
func (ks *KeySet) ReloadIfChanged() (bool, error) { return ks.reload(false) }

// Expire stops publishing removed keys whose tokens have all expired, and
// reports whether any was dropped.
func (ks *KeySet) Expire() bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	cur := ks.cur.Load()
	now := ks.now()
	keep := make([]PublicKey, 0, len(cur.Keys))
	for _, k := range cur.Keys {
		if k.File == "" && !now.Before(k.RetiredUntil) {
			continue
		}
		keep = append(keep, k)
	}
	if len(keep) == len(cur.Keys) {
		return false
	}
	next, err := newSnapshot(keep, cur.signer, cur.ActiveModTime)
	if err != nil {
		return false
	}
	ks.cur.Store(next)
	return true
}

// Watch polls the folder every interval, reloading when its content
// changes and expiring removed keys, and reloads at once on each value from
// force (for example SIGHUP). Each attempted reload is reported. It returns
// when ctx ends.
func (ks *KeySet) Watch(ctx context.Context, interval time.Duration, force <-chan struct{}, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-force:
			report(ks.Reload())
		case <-t.C:
			ks.Expire()
			if tried, err := ks.ReloadIfChanged(); tried {
				report(err)
			}
		}
	}
}

// file is one file read from the folder.
type file struct {
	name    string
	data    []byte
	modTime time.Time
}

func (ks *KeySet) reload(force bool) (bool, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	files, digest, err := readFolder(ks.opts.Dir)
	if err != nil {
		return true, err
	}
	if !force && digest == ks.lastDigest {
		return false, nil
	}
	ks.lastDigest = digest
	next, err := ks.build(files)
	if err != nil {
		return true, err
	}
	ks.cur.Store(next)
	return true, nil
}

// readFolder reads every key file and the active file. Names starting with
// '.' are skipped: Kubernetes keeps its ..data and timestamped folders
// there, and the visible names are symbolic links into them, which are
// followed. The digest covers names and contents, so a swap of the
// symbolic links is seen even when sizes and times are not.
func readFolder(dir string) ([]file, [32]byte, error) {
	var digest [32]byte
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, digest, fmt.Errorf("%s cannot be read: %w", dir, unwrapPath(err))
	}
	var files []file
	var errs []error
	h := sha256.New()
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || (name != ActiveFile && !strings.HasSuffix(name, ".pem")) {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s cannot be read: %w", path, unwrapPath(err)))
			continue
		}
		if fi.IsDir() {
			continue
		}
		data, err := readLimited(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, file{name: name, data: data, modTime: fi.ModTime()})
		h.Write([]byte(name))
		h.Write([]byte{0})
		sum := sha256.Sum256(data)
		h.Write(sum[:])
	}
	if err := errors.Join(errs...); err != nil {
		return nil, digest, err
	}
	copy(digest[:], h.Sum(nil))
	return files, digest, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read: %w", path, unwrapPath(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read: %w", path, unwrapPath(err))
	}
	if len(data) > MaxKeyFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxKeyFileBytes)
	}
	return data, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// build turns the folder's files into a snapshot, carrying removed keys
// over from the current one until they expire.
func (ks *KeySet) build(files []file) (*Snapshot, error) {
	dir := ks.opts.Dir
	var errs []error
	var activeName string
	hasActiveFile := false
	type loaded struct {
		file
		kid string
		key *rsa.PrivateKey
	}
	var keyFiles []loaded
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if f.name == ActiveFile {
			hasActiveFile = true
			activeName = strings.TrimSuffix(strings.TrimSpace(string(f.data)), ".pem")
			continue
		}
		name := strings.TrimSuffix(f.name, ".pem")
		if !validName(name) {
			errs = append(errs, fmt.Errorf("%s: a key's file name must be letters, digits, '.', '_' or '-' before .pem (it becomes the kid)", path))
			continue
		}
		key, err := jitsi.ParseRSAPrivateKeyPEM(f.data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %w", path, err))
			continue
		}
		if bits := key.N.BitLen(); bits < jitsi.MinRSABits {
			errs = append(errs, fmt.Errorf("%s holds a %d-bit RSA key; at least %d bits are required", path, bits, jitsi.MinRSABits))
			continue
		}
		if err := key.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s holds an RSA key that is not valid", path))
			continue
		}
		keyFiles = append(keyFiles, loaded{file: f, kid: ks.opts.KIDPrefix + name, key: key})
	}
	if len(keyFiles) > MaxKeys {
		errs = append(errs, fmt.Errorf("%s holds %d keys; at most %d", dir, len(keyFiles), MaxKeys))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	var active *loaded
	switch {
	case hasActiveFile:
		for i := range keyFiles {
			if strings.TrimSuffix(keyFiles[i].name, ".pem") == activeName {
				active = &keyFiles[i]
			}
		}
		if active == nil {
			return nil, fmt.Errorf("%s names %q, which is not a key file (%s.pem) in the folder", filepath.Join(dir, ActiveFile), activeName, activeName)
		}
	case len(keyFiles) == 1:
		active = &keyFiles[0]
	case len(keyFiles) == 0:
		return nil, fmt.Errorf("%s holds no key file (<name>.pem)", dir)
	default:
		return nil, fmt.Errorf("%s holds %d keys and no file named %q naming the one that signs", dir, len(keyFiles), ActiveFile)
	}

	signer, err := jitsi.NewRSASigner(ks.opts.Algorithm, active.key, active.kid)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, active.name), err)
	}

	cur := ks.cur.Load()
	now := ks.now()
	inFolder := make(map[string]bool, len(keyFiles))
	var pub []PublicKey
	for _, k := range keyFiles {
		der := publicDigest(&k.key.PublicKey)
		if cur != nil {
			if old, ok := cur.byKID(k.kid); ok && publicDigest(old.Public) != der {
				errs = append(errs, fmt.Errorf("%s holds a different key than kid %q had: a kid names one key for ever (Prosody caches it); give the new key a new file name", filepath.Join(dir, k.name), k.kid))
				continue
			}
		}
		inFolder[k.kid] = true
		pub = append(pub, PublicKey{KID: k.kid, Alg: ks.opts.Algorithm, Public: &k.key.PublicKey, File: k.name, Active: k.kid == active.kid})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cur != nil {
		for _, old := range cur.Keys {
			if inFolder[old.KID] {
				continue
			}
			if old.File != "" {
				old.File = ""
				old.Active = false
				old.RetiredUntil = now.Add(ks.opts.MaxTTL)
			}
			if now.Before(old.RetiredUntil) {
				pub = append(pub, old)
			}
		}
	}
	return newSnapshot(pub, signer, active.modTime)
}

// newSnapshot orders keys by kid and prepares everything served from them.
func newSnapshot(pub []PublicKey, signer *jitsi.RSASigner, modTime time.Time) (*Snapshot, error) {
	sort.Slice(pub, func(i, j int) bool { return pub[i].KID < pub[j].KID })
	s := &Snapshot{Keys: pub, ActiveKID: signer.KeyID(), ActiveModTime: modTime, signer: signer,
		byHash: make(map[string]int, len(pub))}
	set := jwk.NewSet()
	for i := range pub {
		k := &pub[i]
		if k.PEM == nil {
			p, err := jitsi.PublicKeyPEM(k.Public)
			if err != nil {
				return nil, err
			}
			k.PEM = p
		}
		sum := sha256.Sum256([]byte(k.KID))
		k.KIDHash = hex.EncodeToString(sum[:])
		s.byHash[k.KIDHash] = i
		jk, err := publicJWK(k)
		if err != nil {
			return nil, err
		}
		if err := set.AddKey(jk); err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
	}
	js, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	s.JWKS = js
	return s, nil
}

func publicJWK(k *PublicKey) (jwk.Key, error) {
	jk, err := jwk.Import(k.Public)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	alg, ok := jwa.LookupSignatureAlgorithm(k.Alg)
	if !ok {
		return nil, fmt.Errorf("jwks: unknown algorithm %q", k.Alg)
	}
	for _, kv := range []struct {
		k string
		v any
	}{{jwk.KeyIDKey, k.KID}, {jwk.AlgorithmKey, alg}, {jwk.KeyUsageKey, jwk.ForSignature}} {
		if err := jk.Set(kv.k, kv.v); err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
	}
	return jk, nil
}

func (s *Snapshot) byKID(kid string) (PublicKey, bool) {
	for _, k := range s.Keys {
		if k.KID == kid {
			return k, true
		}
	}
	return PublicKey{}, false
}

// publicDigest identifies a public key by the SHA-256 of its modulus and
// exponent.
func publicDigest(pub *rsa.PublicKey) [32]byte {
	var b bytes.Buffer
	b.Write(pub.N.Bytes())
	fmt.Fprintf(&b, "/%d", pub.E)
	return sha256.Sum256(b.Bytes())
}

// validName reports whether a key's file name, without .pem, may become a
// kid: 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'.
func validName(name string) bool {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
