package tenants

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultCheckEvery is how often File looks at its file's modification time.
const DefaultCheckEvery = 2 * time.Second

// File is a tenants file, re-read when its modification time or size
// changes (checked at most every CheckEvery). A broken edit keeps the last
// good configuration and is logged once. Safe for concurrent use.
type File struct {
	path string
	log  *slog.Logger
	// CheckEvery is how often the file is checked for changes. Zero means
	// DefaultCheckEvery. Set it before the first Config call.
	CheckEvery time.Duration
	// Now is the clock. Nil means time.Now. Set it before the first
	// Config call.
	Now func() time.Time

	mu      sync.Mutex
	cfg     *Config
	mod     time.Time
	size    int64
	checked time.Time
	// bad is the modification time of a broken version already logged.
	bad time.Time
}

// Open reads a tenants file; it must parse. log (nil: discarded) hears
// about reloads and broken edits, never secrets (the file holds none: it
// names webhook key files, read when a webhook is signed).
func Open(path string, log *slog.Logger) (*File, error) {
	f := &File{path: path, log: cmp.Or(log, slog.New(slog.DiscardHandler)).With("component", "tenants", "file", path)}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.dir = filepath.Dir(path)
	f.cfg, f.mod, f.size = c, st.ModTime(), st.Size()
	return f, nil
}

// Static returns a File that always answers c (no file behind it).
func Static(c *Config) *File {
	if c == nil {
		c = &Config{}
	}
	if c.loc == nil {
		_ = c.validate()
	}
	return &File{cfg: c}
}

// Path is the file's path ("" for Static).
func (f *File) Path() string { return f.path }

// Config returns the current configuration, re-reading the file first when
// it changed and was not checked in the last CheckEvery.
func (f *File) Config() *Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path == "" {
		return f.cfg
	}
	now := time.Now()
	if f.Now != nil {
		now = f.Now()
	}
	if !f.checked.IsZero() && now.Sub(f.checked) < cmp.Or(f.CheckEvery, DefaultCheckEvery) {
		return f.cfg
	}
	f.checked = now
	st, err := os.Stat(f.path)
	if err != nil {
		if !f.bad.Equal(time.Time{}.Add(1)) {
			f.log.Warn("tenants file unreadable: keeping the last good configuration", "err", err)
			f.bad = time.Time{}.Add(1) // logged once until the file is back
		}
		return f.cfg
	}
	if st.ModTime().Equal(f.mod) && st.Size() == f.size {
		return f.cfg
	}
	b, err := os.ReadFile(f.path)
	var c *Config
	if err == nil {
		c, err = Parse(b)
	}
	if c != nil {
		c.dir = filepath.Dir(f.path)
	}
	if err != nil {
		if !f.bad.Equal(st.ModTime()) {
			f.log.Warn("tenants file changed but is broken: keeping the last good configuration", "err", err)
			f.bad = st.ModTime()
		}
		return f.cfg
	}
	f.cfg, f.mod, f.size, f.bad = c, st.ModTime(), st.Size(), time.Time{}
	f.log.Info("tenants file reloaded", "tenants", len(c.Tenants))
	return f.cfg
}
