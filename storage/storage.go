package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"net"
	"path"
	"strings"
	"syscall"
	"time"
)

// ErrNotExist reports that an object is not there. It is fs.ErrNotExist, so
// errors.Is(err, fs.ErrNotExist) works as well.
var ErrNotExist = fs.ErrNotExist

// ErrInvalidKey reports an object key that is refused before it touches any
// backend: empty, absolute, or containing a ".." element.
var ErrInvalidKey = errors.New("storage: invalid object key")

// ErrInvalidRange reports a Range that starts beyond the end of the object
// (or has a negative offset). Backends refuse it rather than return nothing,
// as S3 does (HTTP 416).
var ErrInvalidRange = errors.New("storage: range not satisfiable")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Key is the object's key relative to the Store's root, with "/" separators.
	Key string
	// Size in bytes.
	Size int64
	// ETag identifies the object's content version. S3 returns its own ETag
	// (without quotes); the local backend derives one from size and mtime.
	ETag string
	// Modified is the last-modified time.
	Modified time.Time
	// IsPrefix is true for a "directory" entry returned by a non-recursive List.
	IsPrefix bool
}

// Range asks Get for part of an object: Length bytes from Offset. A Length of
// zero or less means "to the end".
type Range struct {
	Offset int64
	Length int64
}

// ListOptions controls List.
type ListOptions struct {
	// Recursive lists every object below the prefix. When false, keys below
	// the next "/" are folded into one IsPrefix entry.
	Recursive bool
	// StartAfter resumes a listing after this key (exclusive): only entries
	// whose Key sorts after it are yielded, prefix entries of a
	// non-recursive listing included, so passing the last Key seen resumes
	// a listing. Empty starts from the beginning.
	StartAfter string
	// PageSize is how many keys one backend call fetches. Zero means 1000.
	PageSize int
}

// Store is the small interface every backend implements. Keys are relative to
// the Store's root and use "/" separators.
type Store interface {
	// Get opens an object, or the part of it that rng names (nil: all of it).
	// A missing object is ErrNotExist.
	Get(ctx context.Context, key string, rng *Range) (io.ReadCloser, error)
	// Put writes an object atomically: readers see the old object or the whole
	// new one, never a part. size may be -1 when unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Stat returns an object's size, ETag and modification time.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List yields the objects below prefix in lexical key order, fetching
	// them page by page. Iteration stops at the first error.
	List(ctx context.Context, prefix string, opts ListOptions) iter.Seq2[ObjectInfo, error]
	// Delete removes an object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// Location is the URL of the Store's root (s3://bucket/prefix or a path).
	Location() string
}

// Presigner is what a Store that can hand out URLs to its objects also
// implements (storage/s3store does; local folders do not): a GET URL of key
// that anyone holding it may fetch without credentials until ttl has
// passed. The URL carries a signature: it is a secret while it lives, so
// callers never log or store it. Check for it with a type assertion.
type Presigner interface {
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// CleanKey validates an object key and returns it in canonical form (no
// leading "./", no duplicate slashes). It refuses empty keys, absolute paths,
// backslashes-as-separators tricks and any ".." element, so that a key can
// never escape a local root.
func CleanKey(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if strings.ContainsRune(key, 0) {
		return "", fmt.Errorf("%w: %q contains a NUL byte", ErrInvalidKey, key)
	}
	if strings.HasPrefix(key, "/") || strings.HasPrefix(key, `\`) || isDriveLetter(key) {
		return "", fmt.Errorf("%w: %q is an absolute path", ErrInvalidKey, key)
	}
	for _, el := range strings.FieldsFunc(key, func(r rune) bool { return r == '/' || r == '\\' }) {
		if el == ".." {
			return "", fmt.Errorf("%w: %q contains \"..\"", ErrInvalidKey, key)
		}
	}
	c := path.Clean(key)
	if c == "." {
		return "", fmt.Errorf("%w: %q names no object", ErrInvalidKey, key)
	}
	return c, nil
}

// isDriveLetter reports a Windows drive prefix such as "C:".
func isDriveLetter(key string) bool {
	return len(key) > 1 && key[1] == ':' && ((key[0] >= 'a' && key[0] <= 'z') || (key[0] >= 'A' && key[0] <= 'Z'))
}

// JoinKey joins key elements with "/" and cleans the result. It does not
// validate: pass the result through CleanKey before use.
func JoinKey(elems ...string) string {
	nonEmpty := elems[:0:0]
	for _, e := range elems {
		if e = strings.Trim(e, "/"); e != "" {
			nonEmpty = append(nonEmpty, e)
		}
	}
	return strings.Join(nonEmpty, "/")
}

// CleanPrefix validates a List prefix. The empty prefix (everything) is
// valid. Otherwise the CleanKey rules apply, except that a trailing "/" is
// kept: "docs/" matches only keys inside docs/, while "docs" also matches
// "docs.txt". Like S3, a prefix is a plain string prefix of keys.
func CleanPrefix(prefix string) (string, error) {
	if prefix == "" {
		return "", nil
	}
	c, err := CleanKey(prefix)
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(prefix, "/") {
		c += "/"
	}
	return c, nil
}

// Transient wraps err so that IsTransient reports true for it. It returns
// nil for a nil err.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

type transientError struct{ err error }

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() error   { return e.err }
func (e *transientError) Transient() bool { return true }

// IsTransient reports whether err is worth retrying later with the same
// input: network failures, timeouts, and server-side overload (S3 5xx,
// SlowDown, throttling). It is false for nil, for ErrNotExist, ErrInvalidKey,
// ErrInvalidRange, context.Canceled, and for anything it cannot classify
// (access denied, bad request, local I/O errors): those are permanent.
//
// Backends classify their own errors by giving an error in the chain a
// method Transient() bool (see Transient); the first such method found
// decides. Without one, IsTransient falls back to the standard library's
// network and timeout errors.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	for _, permanent := range []error{ErrNotExist, ErrInvalidKey, ErrInvalidRange, context.Canceled} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	var t interface{ Transient() bool }
	if errors.As(err, &t) {
		return t.Transient()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	for _, errno := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE, syscall.ETIMEDOUT} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// ErrNameTooLong reports a key, or one of its elements, longer than the
// backend takes (a local file name over 255 bytes, an S3 key over 1024).
// Retrying cannot fix it: the backend wraps it in a PermanentError.
var ErrNameTooLong = errors.New("storage: name too long")

// ErrAccessDenied reports a store that refuses the operation to these
// credentials (S3 AccessDenied after the SDK's retries, a local EACCES or
// read-only file system). The backend wraps it in a PermanentError: it
// heals only when a person changes the permissions.
var ErrAccessDenied = errors.New("storage: access denied")

// PermanentError is a storage failure that retrying the same operation will
// not heal. Reason says, for a person, what is wrong and what to change
// ("name too long (246 chars; the limit is 255 bytes per path element)");
// Err is the backend's error (with ErrNameTooLong, ErrAccessDenied, … in
// its chain). IsTransient is false for it and IsPermanent true.
type PermanentError struct {
	Reason string
	Err    error
}

func (e *PermanentError) Error() string {
	if e.Reason == "" && e.Err != nil {
		return e.Err.Error()
	}
	return e.Reason
}
func (e *PermanentError) Unwrap() error   { return e.Err }
func (e *PermanentError) Transient() bool { return false }

// Permanent wraps err as a PermanentError with reason. It returns nil for a
// nil err.
func Permanent(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Reason: reason, Err: err}
}

// IsPermanent reports whether retrying an operation that failed with err
// cannot succeed: a *PermanentError in the chain, ErrInvalidKey,
// ErrNameTooLong or ErrAccessDenied. Unlike !IsTransient it is false for
// errors nobody classified (an unknown local I/O error): callers may retry
// those a bounded number of times.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return true
	}
	for _, permanent := range []error{ErrInvalidKey, ErrNameTooLong, ErrAccessDenied} {
		if errors.Is(err, permanent) {
			return true
		}
	}
	return false
}

// PermanentReason is the Reason of err's PermanentError, or err's message
// when it has none.
func PermanentReason(err error) string {
	var pe *PermanentError
	if errors.As(err, &pe) && pe.Reason != "" {
		return pe.Reason
	}
	return err.Error()
}
