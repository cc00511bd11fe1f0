package localstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/internal/iox"
)

// tempPrefix starts the name of the temporary file of a Put in progress.
// List skips such files and keys with an element starting with it are
// refused.
const tempPrefix = ".llamapipe-tmp-"

// Store is a storage.Store over a local folder. It is safe for concurrent use.
type Store struct {
	dir string // absolute path of the root folder

	mu   sync.Mutex
	root *os.Root // nil until the root folder exists

	commits committer // makes Puts durable in groups (commit.go)
}

var _ storage.Store = (*Store)(nil)

// Open returns a Store rooted at the folder root (made absolute). A missing
// folder is not created by Open, nor by reading: Get, Stat and List answer
// storage.ErrNotExist saying the folder does not exist (List only for the
// root itself; a missing folder below it lists nothing), Delete does
// nothing, and the first Put creates the folder and its parents. So a
// source that does not exist is reported, never created, and an output
// folder appears with the first result written into it. A root that exists
// but is not a folder is refused.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("localstore: open %s: %w", root, err)
	}
	s := &Store{dir: abs, commits: committer{sync: defaultSyncer}}
	if _, err := s.handle(false); err != nil && !errors.Is(err, errNoRoot) {
		return nil, fmt.Errorf("localstore: open %s: %w", abs, err)
	}
	return s, nil
}

// errNoRoot is handle's answer for a root folder that does not exist.
var errNoRoot = errors.New("folder does not exist")

// handle returns the open root folder. A missing folder is created when
// create is set, else handle returns an error wrapping errNoRoot and
// fs.ErrNotExist (tried again on the next call: a Put may create it).
func (s *Store) handle(create bool) (*os.Root, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root != nil {
		return s.root, nil
	}
	if create {
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return nil, err
		}
	}
	r, err := os.OpenRoot(s.dir)
	if err != nil {
		if fi, serr := os.Stat(s.dir); serr == nil && !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a folder", s.dir)
		}
	}
	if notExist(err) {
		return nil, fmt.Errorf("%s: %w: %w", s.dir, errNoRoot, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	s.root = r
	return r, nil
}

// CheckRoot returns an error wrapping storage.ErrNotExist ("folder …
// does not exist") when the root folder does not exist (yet), and nil when
// it does. Callers that must not go on without it (a source) ask first.
func (s *Store) CheckRoot() error {
	if _, err := s.handle(false); err != nil {
		return s.errorf("open", "", err)
	}
	return nil
}

// Close releases the handle on the root folder. The Store must not be used
// afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == nil {
		return nil
	}
	return s.root.Close()
}

// Location returns the absolute path of the root folder.
func (s *Store) Location() string { return s.dir }

// cleanKey applies storage.CleanKey and refuses names that would collide with
// temporary files.
func cleanKey(key string) (string, error) {
	k, err := storage.CleanKey(key)
	if err != nil {
		return "", err
	}
	for el := range strings.SplitSeq(k, "/") {
		if strings.HasPrefix(el, tempPrefix) {
			return "", fmt.Errorf("%w: %q uses the reserved name prefix %q", storage.ErrInvalidKey, key, tempPrefix)
		}
	}
	return k, nil
}

// notExist reports errors meaning "no such object": a missing file or a
// missing folder on the way (including a file where a folder was expected).
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// errorf wraps err with the operation and key. For reads ("get", "stat",
// "list") a missing file or folder becomes storage.ErrNotExist; for writes it
// stays what it is (e.g. a file where Put needs a folder).
func (s *Store) errorf(op, key string, err error) error {
	if errors.Is(err, errNoRoot) {
		return fmt.Errorf("localstore: folder %s does not exist: %w", s.dir, storage.ErrNotExist)
	}
	if op != "put" && op != "delete" && notExist(err) {
		return fmt.Errorf("localstore: %s %q in %s: %w", op, key, s.dir, storage.ErrNotExist)
	}
	return fmt.Errorf("localstore: %s %q in %s: %w", op, key, s.dir, classify(op, key, err))
}

// nameMax is the longest file name (one path element) the common local
// file systems take, in bytes.
const nameMax = 255

// classify marks the local errors that retrying cannot heal as
// storage.PermanentError: a name too long for the file system, and a
// refused permission or read-only file system (until a person changes it).
func classify(op, key string, err error) error {
	switch {
	case errors.Is(err, syscall.ENAMETOOLONG):
		return storage.Permanent(nameTooLong(key), fmt.Errorf("%w: %w", storage.ErrNameTooLong, err))
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		access := "read"
		if op == "put" || op == "delete" {
			access = "write"
		}
		return storage.Permanent(fmt.Sprintf("access denied: %v (give the worker %s access)", err, access),
			fmt.Errorf("%w: %w", storage.ErrAccessDenied, err))
	}
	return err
}

// nameTooLong says which element of key is too long, and by how much.
func nameTooLong(key string) string {
	longest := ""
	for _, el := range strings.Split(key, "/") {
		if len(el) > len(longest) {
			longest = el
		}
	}
	if n := utf8.RuneCountInString(longest); n != len(longest) {
		return fmt.Sprintf("name too long (%d chars, %d bytes; the limit is %d bytes per path element)", n, len(longest), nameMax)
	}
	return fmt.Sprintf("name too long (%d chars; the limit is %d bytes per path element)", len(longest), nameMax)
}

// Get opens an object, or the part of it that rng names.
func (s *Store) Get(ctx context.Context, key string, rng *storage.Range) (io.ReadCloser, error) {
	k, err := cleanKey(key)
	if err != nil {
		return nil, fmt.Errorf("localstore: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s.errorf("get", k, err)
	}
	root, err := s.handle(false)
	if err != nil {
		return nil, s.errorf("get", k, err)
	}
	// Refuse anything but a regular file before opening it: opening a FIFO
	// would block.
	if fi, err := root.Stat(filepath.FromSlash(k)); err != nil {
		return nil, s.errorf("get", k, err)
	} else if !fi.Mode().IsRegular() {
		return nil, s.errorf("get", k, fs.ErrNotExist)
	}
	f, err := root.Open(filepath.FromSlash(k))
	if err != nil {
		return nil, s.errorf("get", k, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, s.errorf("get", k, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, s.errorf("get", k, fs.ErrNotExist)
	}
	var r io.Reader = f
	if rng != nil && (rng.Offset != 0 || rng.Length > 0) {
		if rng.Offset < 0 || rng.Offset >= fi.Size() {
			f.Close()
			return nil, s.errorf("get", k, fmt.Errorf("%w: offset %d, size %d", storage.ErrInvalidRange, rng.Offset, fi.Size()))
		}
		if _, err := f.Seek(rng.Offset, io.SeekStart); err != nil {
			f.Close()
			return nil, s.errorf("get", k, err)
		}
		if rng.Length > 0 {
			r = io.LimitReader(f, rng.Length)
		}
	}
	return iox.ReadCloser{Reader: iox.WithContext(ctx, r), Closer: f}, nil
}

// Put writes an object atomically and durably: the bytes go to a temporary
// file in the destination folder, which a group commit (commit.go) syncs and
// renames over the key together with the other Puts waiting at the time,
// then makes the renames durable. Put returns once its object is durable. When
// size >= 0 and r yields a different number of bytes, nothing is written.
// contentType is ignored.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	root, p, err := s.writeTemp(ctx, key, r, size)
	if err != nil {
		return err
	}
	// The group commit syncs, closes and renames the file (or removes it).
	if err := s.commits.commit(root, p); err != nil {
		return s.errorf("put", p.key, err)
	}
	return nil
}

// writeTemp writes r to a new temporary file in key's folder (created when
// missing) without a sync, and returns it open, for a commit. On error
// nothing is left behind.
func (s *Store) writeTemp(ctx context.Context, key string, r io.Reader, size int64) (_ *os.Root, _ *pending, err error) {
	k, err := cleanKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("localstore: put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, s.errorf("put", k, err)
	}
	root, err := s.handle(true)
	if err != nil {
		return nil, nil, s.errorf("put", k, err)
	}
	dir := path.Dir(k)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // never fails (crypto/rand docs)
	tmp := path.Join(dir, tempPrefix+hex.EncodeToString(rnd[:]))
	var f *os.File
	// The folder usually exists: create the file first, and the folders
	// only when it does not (MkdirAll costs a system call per folder even
	// when they exist). A concurrent Delete may remove (then empty) folders
	// while MkdirAll creates them or before the file is created: try again a
	// few times.
	for attempt := 0; ; attempt++ {
		err = nil
		if dir != "." && attempt > 0 {
			err = root.MkdirAll(filepath.FromSlash(dir), 0o755)
		}
		if err == nil {
			f, err = root.OpenFile(filepath.FromSlash(tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err == nil {
				break
			}
		}
		// ErrExist: another Put created a folder MkdirAll was creating.
		if !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist)) || attempt == 9 {
			return nil, nil, s.errorf("put", k, err)
		}
	}
	if _, err = io.Copy(f, iox.WithContext(ctx, iox.Exact(r, size))); err == nil {
		err = ctx.Err()
	}
	if err != nil {
		f.Close()
		_ = root.Remove(filepath.FromSlash(tmp))
		return nil, nil, s.errorf("put", k, err)
	}
	return root, &pending{f: f, tmp: tmp, key: k}, nil
}

// Stat returns an object's size, ETag and modification time. The ETag is
// derived from size, mtime and (on Unix) inode number and change time: it
// stays the same while the file is untouched and changes when Put replaces it.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	k, err := cleanKey(key)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("localstore: stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, s.errorf("stat", k, err)
	}
	root, err := s.handle(false)
	if err != nil {
		return storage.ObjectInfo{}, s.errorf("stat", k, err)
	}
	fi, err := root.Stat(filepath.FromSlash(k))
	if err != nil {
		return storage.ObjectInfo{}, s.errorf("stat", k, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, s.errorf("stat", k, fs.ErrNotExist)
	}
	return objectInfo(k, fi), nil
}

func objectInfo(key string, fi fs.FileInfo) storage.ObjectInfo {
	return storage.ObjectInfo{Key: key, Size: fi.Size(), ETag: etag(fi), Modified: fi.ModTime()}
}

func etag(fi fs.FileInfo) string {
	ino, ctime := fileIdentity(fi)
	var b [32]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(fi.Size()))
	binary.LittleEndian.PutUint64(b[8:], uint64(fi.ModTime().UnixNano()))
	binary.LittleEndian.PutUint64(b[16:], ino)
	binary.LittleEndian.PutUint64(b[24:], uint64(ctime))
	sum := sha256.Sum256(b[:])
	return hex.EncodeToString(sum[:16])
}

// Delete removes an object, then any folders left empty above it (up to the
// root). A missing object, or a key naming a folder, is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := cleanKey(key)
	if err != nil {
		return fmt.Errorf("localstore: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return s.errorf("delete", k, err)
	}
	root, err := s.handle(false)
	if errors.Is(err, errNoRoot) {
		return nil
	}
	if err != nil {
		return s.errorf("delete", k, err)
	}
	fi, err := root.Lstat(filepath.FromSlash(k))
	if notExist(err) || (err == nil && fi.IsDir()) {
		return nil
	}
	if err != nil {
		return s.errorf("delete", k, err)
	}
	if err := root.Remove(filepath.FromSlash(k)); err != nil && !notExist(err) {
		return s.errorf("delete", k, err)
	}
	// Tidy up: remove now-empty parents. Remove fails on a non-empty folder,
	// which ends the climb.
	for dir := path.Dir(k); dir != "."; dir = path.Dir(dir) {
		if root.Remove(filepath.FromSlash(dir)) != nil {
			break
		}
	}
	return nil
}

// List yields the objects whose keys start with prefix, in lexical key order.
func (s *Store) List(ctx context.Context, prefix string, opts storage.ListOptions) iter.Seq2[storage.ObjectInfo, error] {
	return func(yield func(storage.ObjectInfo, error) bool) {
		p, err := storage.CleanPrefix(prefix)
		if err != nil {
			yield(storage.ObjectInfo{}, fmt.Errorf("localstore: list: %w", err))
			return
		}
		base := ""
		if i := strings.LastIndex(p, "/"); i >= 0 {
			base = p[:i+1]
		}
		w := walker{s: s, ctx: ctx, prefix: p, opts: opts, yield: yield}
		w.walk(base)
	}
}

type walker struct {
	s      *Store
	ctx    context.Context
	prefix string
	opts   storage.ListOptions
	yield  func(storage.ObjectInfo, error) bool
}

type entry struct {
	key   string // folders end in "/"
	isDir bool
	de    fs.DirEntry
}

// readDir returns the listable entries of the folder dir ("" or "a/b/"),
// sorted by key: folder names compare with their trailing "/", which gives
// the lexical order of the full keys below them.
func (s *Store) readDir(dir string) ([]entry, error) {
	name := "."
	if dir != "" {
		name = filepath.FromSlash(strings.TrimSuffix(dir, "/"))
	}
	root, err := s.handle(false)
	if err != nil {
		return nil, err
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	entries := make([]entry, 0, len(des))
	for _, de := range des {
		if strings.HasPrefix(de.Name(), tempPrefix) {
			continue
		}
		switch {
		case de.Type().IsRegular():
			entries = append(entries, entry{key: dir + de.Name(), de: de})
		case de.IsDir():
			entries = append(entries, entry{key: dir + de.Name() + "/", isDir: true, de: de})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	return entries, nil
}

// walk lists the folder dir and returns false when iteration must stop.
func (w *walker) walk(dir string) bool {
	if err := w.ctx.Err(); err != nil {
		w.yield(storage.ObjectInfo{}, w.s.errorf("list", w.prefix, err))
		return false
	}
	entries, err := w.s.readDir(dir)
	if notExist(err) && !errors.Is(err, errNoRoot) {
		return true // nothing there (or deleted meanwhile)
	}
	if err != nil {
		w.yield(storage.ObjectInfo{}, w.s.errorf("list", w.prefix, err))
		return false
	}
	sa := w.opts.StartAfter
	for _, e := range entries {
		if !e.isDir {
			if !strings.HasPrefix(e.key, w.prefix) || e.key <= sa {
				continue
			}
			fi, err := e.de.Info()
			if notExist(err) {
				continue // deleted meanwhile
			}
			if err != nil {
				w.yield(storage.ObjectInfo{}, w.s.errorf("list", w.prefix, err))
				return false
			}
			if !w.yield(objectInfo(e.key, fi), nil) {
				return false
			}
			continue
		}
		inPrefix := strings.HasPrefix(e.key, w.prefix)
		if !inPrefix && !strings.HasPrefix(w.prefix, e.key) {
			continue
		}
		// Every key below e.key sorts at or before StartAfter: skip.
		if sa >= e.key && !strings.HasPrefix(sa, e.key) {
			continue
		}
		if !w.opts.Recursive && inPrefix {
			if e.key <= sa {
				continue
			}
			has, err := w.hasObject(e.key)
			if err != nil {
				w.yield(storage.ObjectInfo{}, w.s.errorf("list", w.prefix, err))
				return false
			}
			if has && !w.yield(storage.ObjectInfo{Key: e.key, IsPrefix: true}, nil) {
				return false
			}
			continue
		}
		if !w.walk(e.key) {
			return false
		}
	}
	return true
}

// hasObject reports whether any object exists below the folder dir, so that
// empty folders do not show up as prefixes (S3 has no empty folders).
func (w *walker) hasObject(dir string) (bool, error) {
	if err := w.ctx.Err(); err != nil {
		return false, err
	}
	entries, err := w.s.readDir(dir)
	if notExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if !e.isDir {
			return true, nil
		}
	}
	for _, e := range entries {
		if has, err := w.hasObject(e.key); has || err != nil {
			return has, err
		}
	}
	return false, nil
}
