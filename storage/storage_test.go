package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/llamapipe/llamapipe/storage"
)

func TestCleanKey(t *testing.T) {
	valid := map[string]string{
		"a":                         "a",
		"a/b.txt":                   "a/b.txt",
		"./a":                       "a",
		"a//b":                      "a/b",
		"a/./b":                     "a/b",
		"a/":                        "a",
		"..a":                       "..a",
		"a..b/c..":                  "a..b/c..",
		"ü/x y+z.pdf":               "ü/x y+z.pdf",
		"2024-01-01T10:00:00Z.json": "2024-01-01T10:00:00Z.json",
		"1:2":                       "1:2",
	}
	for in, want := range valid {
		got, err := storage.CleanKey(in)
		if err != nil || got != want {
			t.Errorf("CleanKey(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	invalid := []string{"", ".", "./", "/", "/a", "/etc/passwd", `\a`, "C:/x", "c:x", "..", "../a", "a/..",
		"a/../b", "a/../../b", `a\..\b`, `..\x`, "a\x00b"}
	for _, in := range invalid {
		got, err := storage.CleanKey(in)
		if !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("CleanKey(%q) = %q, %v; want ErrInvalidKey", in, got, err)
		}
	}
}

func TestCleanPrefix(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "a", "a/": "a/", "a//b/": "a/b/", "./a/": "a/"} {
		got, err := storage.CleanPrefix(in)
		if err != nil || got != want {
			t.Errorf("CleanPrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"/", "./", "../", "a/../", "/etc"} {
		if _, err := storage.CleanPrefix(in); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("CleanPrefix(%q) = %v, want ErrInvalidKey", in, err)
		}
	}
}

func TestJoinKey(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"a/", "/b", "", "c"}, "a/b/c"},
		{[]string{"", "x"}, "x"},
		{nil, ""},
	} {
		if got := storage.JoinKey(tc.in...); got != tc.want {
			t.Errorf("JoinKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseLocation(t *testing.T) {
	cwd := t.TempDir()
	t.Chdir(cwd)
	cwd, _ = os.Getwd() // the temp dir may sit behind a symlink
	for _, tc := range []struct {
		in   string
		want storage.Location
		str  string
	}{
		{"s3://bucket", storage.Location{Scheme: "s3", Bucket: "bucket"}, "s3://bucket"},
		{"s3://bucket/", storage.Location{Scheme: "s3", Bucket: "bucket"}, "s3://bucket"},
		{"s3://bucket/in/put/", storage.Location{Scheme: "s3", Bucket: "bucket", Prefix: "in/put"}, "s3://bucket/in/put"},
		{"s3://b/a//b?x#y%20", storage.Location{Scheme: "s3", Bucket: "b", Prefix: "a/b?x#y%20"}, "s3://b/a/b?x#y%20"},
		{"file:///srv/data/", storage.Location{Scheme: "file", Prefix: "/srv/data"}, "/srv/data"},
		{"file://localhost/srv/a%20b", storage.Location{Scheme: "file", Prefix: "/srv/a b"}, "/srv/a b"},
		{"/srv/x/../data", storage.Location{Scheme: "file", Prefix: "/srv/data"}, "/srv/data"},
		{"rel/dir", storage.Location{Scheme: "file", Prefix: filepath.Join(cwd, "rel/dir")}, filepath.Join(cwd, "rel/dir")},
		{".", storage.Location{Scheme: "file", Prefix: cwd}, cwd},
		{"./odd://name", storage.Location{Scheme: "file", Prefix: filepath.Join(cwd, "odd:/name")}, filepath.Join(cwd, "odd:/name")},
	} {
		got, err := storage.ParseLocation(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseLocation(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
		// The canonical form parses to the same location.
		if again, err := storage.ParseLocation(got.String()); err != nil || again != got {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
	for _, in := range []string{"", "s3://", "s3:///prefix", "s3://b/../x", "s3://b/a/../../x", "gs://bucket/x",
		"http://host/x", "file://host/srv"} {
		if got, err := storage.ParseLocation(in); err == nil {
			t.Errorf("ParseLocation(%q) = %+v, want an error", in, got)
		}
	}
	if _, err := storage.ParseLocation("s3://b/../x"); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("ParseLocation(s3://b/../x) = %v, want ErrInvalidKey", err)
	}
}

type classified struct{ transient bool }

func (c classified) Error() string   { return fmt.Sprintf("classified(%v)", c.transient) }
func (c classified) Transient() bool { return c.transient }

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestIsTransient(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("op x: %w", err) }
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{wrap(fs.ErrNotExist), false},
		{wrap(storage.ErrInvalidKey), false},
		{wrap(storage.ErrInvalidRange), false},
		{wrap(fs.ErrPermission), false},
		{wrap(context.Canceled), false},
		{wrap(context.DeadlineExceeded), true},
		{wrap(io.ErrUnexpectedEOF), true},
		{wrap(timeoutErr{}), true},
		{wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{wrap(syscall.ECONNRESET), true},
		{wrap(syscall.ENOSPC), false},
		{wrap(classified{true}), true},
		{wrap(classified{false}), false},
		// A backend's verdict wins over the generic fallbacks ...
		{wrap(fmt.Errorf("%w: %w", classified{false}, context.DeadlineExceeded)), false},
		// ... but never turns a permanent sentinel transient.
		{storage.Transient(wrap(fs.ErrNotExist)), false},
		{storage.Transient(errors.New("flaky")), true},
		{storage.Transient(nil), false},
	} {
		if got := storage.IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if err := storage.Transient(fs.ErrClosed); !errors.Is(err, fs.ErrClosed) || err.Error() != fs.ErrClosed.Error() {
		t.Errorf("Transient does not wrap transparently: %v", err)
	}
}

func TestPermanentErrors(t *testing.T) {
	inner := fmt.Errorf("%w: rename: file name too long", storage.ErrNameTooLong)
	err := fmt.Errorf("localstore: put %q: %w", "k", storage.Permanent("name too long (300 chars; the limit is 255 bytes per path element)", inner))
	if !storage.IsPermanent(err) || storage.IsTransient(err) || !errors.Is(err, storage.ErrNameTooLong) {
		t.Errorf("wrapped PermanentError: permanent %v, transient %v", storage.IsPermanent(err), storage.IsTransient(err))
	}
	if got := storage.PermanentReason(err); got != "name too long (300 chars; the limit is 255 bytes per path element)" {
		t.Errorf("reason %q", got)
	}
	for _, e := range []error{storage.ErrInvalidKey, storage.ErrAccessDenied, fmt.Errorf("x: %w", storage.ErrNameTooLong)} {
		if !storage.IsPermanent(e) {
			t.Errorf("IsPermanent(%v) = false", e)
		}
	}
	// Errors nobody classified are neither: callers retry them a bounded
	// number of times.
	for _, e := range []error{nil, errors.New("disk hiccup"), storage.ErrNotExist, storage.Transient(errors.New("503"))} {
		if storage.IsPermanent(e) {
			t.Errorf("IsPermanent(%v) = true", e)
		}
	}
	if storage.Permanent("r", nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}
