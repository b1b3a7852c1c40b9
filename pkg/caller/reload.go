package caller

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Reload outcomes, as metrics label them.
const (
	ReloadSuccess = "success"
	ReloadFailure = "failure"
)

// Reloader keeps a Store in step with a callers file: on SIGHUP, and when
// the file's content changes (Kubernetes replaces mounted files by swapping
// a symlink, so the content is compared, not the modification time). A file
// that does not parse is logged and counted once (a file that cannot be read
// at all, at every check until it can), and the callers in force
// keep serving.
type Reloader struct {
	path     string
	defaults Defaults
	log      *slog.Logger
	// observe reports each reload's outcome and the number of callers in
	// force after it.
	observe func(outcome string, callers int)

	mu     sync.Mutex
	digest [sha256.Size]byte
	store  *Store
}

// NewReloader returns a Reloader for the callers file at path. observe may
// be nil.
func NewReloader(path string, d Defaults, log *slog.Logger, observe func(outcome string, callers int)) *Reloader {
	if observe == nil {
		observe = func(string, int) {}
	}
	return &Reloader{path: path, defaults: d, log: log, observe: observe}
}

// Load reads the file for start-up and returns a Store holding its callers.
func (r *Reloader) Load() (*Store, error) {
	data, err := readFile(r.path)
	if err != nil {
		return nil, err
	}
	set, err := Parse(data, r.defaults)
	if err != nil {
		return nil, fileError(r.path, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.digest = sha256.Sum256(data)
	r.store = NewStore(set)
	r.observe(ReloadSuccess, set.Len())
	return r.store, nil
}

// Reload reads the file again and puts its callers in force. Unless force
// is set, a file whose content has not changed since the last attempt is
// left alone. It returns the parse or read error, after logging it.
func (r *Reloader) Reload(force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.store == nil {
		return fmt.Errorf("callers file %s: reload before load", r.path)
	}
	data, err := readFile(r.path)
	if err != nil {
		return r.failed(err)
	}
	digest := sha256.Sum256(data)
	if digest == r.digest && !force {
		return nil
	}
	r.digest = digest
	set, err := Parse(data, r.defaults)
	if err != nil {
		return r.failed(fileError(r.path, err))
	}
	r.store.Replace(set)
	r.observe(ReloadSuccess, set.Len())
	r.log.Info("callers file reloaded", "path", r.path, "callers", set.Len())
	return nil
}

func (r *Reloader) failed(err error) error {
	r.observe(ReloadFailure, r.store.Load().Len())
	r.log.Error("callers file not reloaded; the previous callers stay in force", "path", r.path, "error", err.Error())
	return err
}

// Run reloads on every value from hup and checks the file every interval,
// until ctx ends.
func (r *Reloader) Run(ctx context.Context, interval time.Duration, hup <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = r.Reload(true)
		case <-t.C:
			_ = r.Reload(false)
		}
	}
}
