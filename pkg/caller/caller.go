// Package caller identifies the internal services that call jitsi-signer:
// it reads the callers file (names and SHA-256 digests of API keys, never the
// keys) and authenticates a presented key in constant time.
package caller

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"sigs.k8s.io/yaml"

	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

// Caller is an authenticated service and what it may ask for. A Caller is
// immutable once its set is in force, and safe for concurrent use.
type Caller struct {
	// Name attributes requests in logs and metrics.
	Name   string
	policy Policy
	// limiter is nil when the caller's rate is unlimited.
	limiter *rate.Limiter
}

// AnonymousName is the name of the caller of every request when no callers
// file is set.
const AnonymousName = "anonymous"

// NewAnonymous returns the caller every request is attributed to when no
// callers file is set: any role, room and tenant, never a wildcard room,
// with the default rate limit.
func NewAnonymous(d Defaults) *Caller {
	p := OpenPolicy(d)
	return &Caller{Name: AnonymousName, policy: p, limiter: newLimiter(p.rate)}
}

// Policy returns the caller's policy.
func (c *Caller) Policy() *Policy { return &c.policy }

// Authorize implements jitsi.Authorizer with the caller's policy; a refusal
// is a *Denial.
func (c *Caller) Authorize(g *jitsi.Grant) error { return c.policy.authorize(c.Name, g) }

// Allow takes one request from the caller's rate limit. When the limit is
// spent it reports false and how long until a request would be allowed.
func (c *Caller) Allow(now time.Time) (bool, time.Duration) {
	if c.limiter == nil || c.limiter.AllowN(now, 1) {
		return true, 0
	}
	r := c.limiter.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// MaxFileBytes caps the size of a callers file.
const MaxFileBytes = 1 << 20

// MaxKeyBytes caps the length of a presented API key.
const MaxKeyBytes = 512

// namePattern keeps caller names short and safe as metric label values.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Set is an immutable set of callers.
type Set struct {
	entries []entry
}

type entry struct {
	caller *Caller
	digest [sha256.Size]byte
}

// fileSpec is the callers file.
type fileSpec struct {
	Callers []callerSpec `json:"callers"`
}

type callerSpec struct {
	Name      string      `json:"name"`
	KeySHA256 string      `json:"key_sha256"`
	Policy    *policySpec `json:"policy"`
}

// LoadFile reads and parses a callers file.
func LoadFile(path string, d Defaults) (*Set, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(data, d)
	if err != nil {
		return nil, fileError(path, err)
	}
	return s, nil
}

// fileError prefixes every line of err with the file it is about, so that
// each problem reads on its own.
func fileError(path string, err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = fmt.Sprintf("callers file %s: %s", path, l)
	}
	return errors.New(strings.Join(lines, "\n"))
}

// readFile reads a callers file of at most MaxFileBytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("callers file %s cannot be read: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("callers file %s cannot be read: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("callers file %s is larger than %d bytes", path, MaxFileBytes)
	}
	return data, nil
}

// Parse reads a callers file in JSON or YAML:
//
//	callers:
//	  - name: booking
//	    key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//	    policy:
//	      roles: [moderator, participant]
//	      rooms: ["booking-*"]
//	      tenants: ["acme"]
//	      max_ttl: 2h
//	      rate_limit: {requests_per_second: 20, burst: 40}
//
// Unknown fields, duplicate keys, duplicate names and duplicate digests are
// refused, and every caller needs a policy; every problem is reported, each
// naming its caller and field.
func Parse(data []byte, d Defaults) (*Set, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML or JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var spec fileSpec
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("does not match the callers file format: %w", err)
	}
	if len(spec.Callers) == 0 {
		return nil, errors.New("lists no callers")
	}
	var errs []error
	s := &Set{entries: make([]entry, 0, len(spec.Callers))}
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]string{}
	for i, c := range spec.Callers {
		where := fmt.Sprintf("callers[%d]", i)
		if c.Name != "" {
			where = fmt.Sprintf("caller %q", c.Name)
		}
		if !namePattern.MatchString(c.Name) {
			errs = append(errs, fmt.Errorf("%s: name must be 1-63 lowercase letters, digits, '.', '_' or '-'", where))
		}
		if names[c.Name] {
			errs = append(errs, fmt.Errorf("%s: name is listed twice", where))
		}
		names[c.Name] = true
		var digest [sha256.Size]byte
		raw, err := hex.DecodeString(strings.ToLower(c.KeySHA256))
		if err != nil || len(raw) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s: key_sha256 must be 64 hex digits (the SHA-256 of the API key)", where))
			continue
		}
		copy(digest[:], raw)
		if other, dup := digests[digest]; dup {
			errs = append(errs, fmt.Errorf("%s: key_sha256 is the same as caller %q's", where, other))
		}
		digests[digest] = c.Name
		policy, perrs := parsePolicy(where, c.Policy, d)
		errs = append(errs, perrs...)
		s.entries = append(s.entries, entry{
			caller: &Caller{Name: c.Name, policy: policy, limiter: newLimiter(policy.rate)},
			digest: digest,
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Len is the number of callers.
func (s *Set) Len() int { return len(s.entries) }

// Authenticate returns the caller whose key is key. It hashes the key and
// compares the digest with every caller's in constant time, so neither the
// answer's timing nor its form tells an unknown key from a wrong one.
func (s *Set) Authenticate(key []byte) (*Caller, bool) {
	d := sha256.Sum256(key)
	found := -1
	for i := range s.entries {
		if subtle.ConstantTimeCompare(d[:], s.entries[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return nil, false
	}
	return s.entries[found].caller, true
}

// HashKey returns the hex SHA-256 of an API key, as the callers file lists it.
func HashKey(key []byte) string {
	d := sha256.Sum256(key)
	return hex.EncodeToString(d[:])
}

// Store holds the callers in force and lets a reload replace them
// atomically: every request sees either the old set or the new one.
type Store struct {
	p atomic.Pointer[Set]
}

// NewStore returns a Store holding s.
func NewStore(s *Set) *Store {
	st := &Store{}
	st.p.Store(s)
	return st
}

// Load returns the callers in force.
func (st *Store) Load() *Set { return st.p.Load() }

// Replace puts s in force. A caller whose rate limit is unchanged keeps its
// limiter, so that a reload neither refills nor empties its bucket.
func (st *Store) Replace(s *Set) {
	if prev := st.p.Load(); prev != nil {
		old := make(map[string]*Caller, len(prev.entries))
		for _, e := range prev.entries {
			old[e.caller.Name] = e.caller
		}
		for _, e := range s.entries {
			if o := old[e.caller.Name]; o != nil && o.policy.rate == e.caller.policy.rate {
				e.caller.limiter = o.limiter
			}
		}
	}
	st.p.Store(s)
}
