package localstore_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/storage/storagetest"
)

func TestSuite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return storagetest.NewLocalStore(t) })
}

// Open creates no folder (see nocreate_test.go); the first Put creates the
// root and its parents.
func TestPutCreatesRootAndLocationIsAbsolute(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "root")
	t.Chdir(filepath.Dir(filepath.Dir(dir)))
	s, err := localstore.Open(filepath.Join("new", "root"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Open created the root: %v", err)
	}
	if got, want := s.Location(), dir; got != want {
		t.Errorf("Location() = %q, want %q", got, want)
	}
	if err := s.Put(t.Context(), "a/b.txt", strings.NewReader("hi"), 2, "text/plain"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a", "b.txt")); err != nil || string(b) != "hi" {
		t.Errorf("file on disk = %q, %v", b, err)
	}
}

// Invalid keys never touch the disk outside (or inside) the root.
func TestInvalidKeysDoNotEscape(t *testing.T) {
	parent := t.TempDir()
	s, err := localstore.Open(filepath.Join(parent, "root"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []string{"../x", "../root2/x", "a/../../x"} {
		if err := s.Put(t.Context(), k, strings.NewReader("x"), 1, ""); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, nil) {
		t.Errorf("parent folder holds %q, want nothing (not even the root, which the first valid Put creates)", names)
	}
}

// A symbolic link inside the root that points outside it must not give
// access to the outside file, and List must not follow it.
func TestSymlinkCannotEscape(t *testing.T) {
	parent := t.TempDir()
	secret := filepath.Join(parent, "secret.txt")
	if err := os.WriteFile(secret, []byte("top secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(parent, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := localstore.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.Symlink(secret, filepath.Join(root, "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret.txt", filepath.Join(root, "rel-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(parent, filepath.Join(root, "dir-link")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"abs-link", "rel-link", "dir-link/secret.txt"} {
		rc, err := s.Get(t.Context(), k, nil)
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Errorf("Get(%q) through an escaping symlink returned %q", k, b)
		}
		if _, err := s.Stat(t.Context(), k); err == nil {
			t.Errorf("Stat(%q) through an escaping symlink succeeded", k)
		}
	}
	if err := s.Put(t.Context(), "dir-link/planted", strings.NewReader("x"), 1, ""); err == nil {
		t.Errorf("Put through an escaping symlinked folder succeeded")
	}
	if _, err := os.Stat(filepath.Join(parent, "planted")); err == nil {
		t.Errorf("a file was written outside the root")
	}
	for info, err := range s.List(t.Context(), "", storage.ListOptions{Recursive: true}) {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("List followed a symlink: %+v", info)
	}
	// Overwriting the link itself replaces the link, not the target.
	if err := s.Put(t.Context(), "abs-link", strings.NewReader("new"), 3, ""); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "top secret" {
		t.Errorf("Put through a symlink changed the outside file to %q", b)
	}
}

// Temporary files of a Put in progress are not listed, and their names are
// reserved.
func TestTempFilesHidden(t *testing.T) {
	root := t.TempDir()
	s, err := localstore.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.WriteFile(filepath.Join(root, ".llamapipe-tmp-0123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "real", strings.NewReader("r"), 1, ""); err != nil {
		t.Fatal(err)
	}
	var got []string
	for info, err := range s.List(t.Context(), "", storage.ListOptions{Recursive: true}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, info.Key)
	}
	if !slices.Equal(got, []string{"real"}) {
		t.Errorf("List = %q, want [real]", got)
	}
	if _, err := s.Stat(t.Context(), "x/.llamapipe-tmp-0123"); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Stat of a temp-file name = %v, want ErrInvalidKey", err)
	}
	// A successful Put leaves no temporary file behind.
	entries, _ := os.ReadDir(root)
	if len(entries) != 2 {
		t.Errorf("root holds %d entries, want 2 (the planted temp file and real)", len(entries))
	}
}

// A file changed behind the Store's back gets a new ETag.
func TestETagFollowsExternalChange(t *testing.T) {
	root := t.TempDir()
	s, err := localstore.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(t.Context(), "f", strings.NewReader("aaaa"), 4, ""); err != nil {
		t.Fatal(err)
	}
	a, err := s.Stat(t.Context(), "f")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("bbbbbbbb"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := s.Stat(t.Context(), "f")
	if err != nil {
		t.Fatal(err)
	}
	if a.ETag == b.ETag || b.Size != 8 {
		t.Errorf("after an external write: %+v, before: %+v", b, a)
	}
}

// A key cannot be both an object and a folder on a file system: Put says so
// with an error that is neither "not exist" nor transient.
func TestObjectFolderConflict(t *testing.T) {
	s := storagetest.NewLocalStore(t)
	ctx := t.Context()
	if err := s.Put(ctx, "f", strings.NewReader("x"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "d/x", strings.NewReader("x"), 1, ""); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"f/x", "d"} {
		err := s.Put(ctx, k, strings.NewReader("y"), 1, "")
		if err == nil {
			t.Errorf("Put(%q) succeeded", k)
			continue
		}
		if errors.Is(err, storage.ErrNotExist) || storage.IsTransient(err) {
			t.Errorf("Put(%q) = %v: reported as not-exist or transient", k, err)
		}
	}
}

// A name the file system cannot take, and a folder the worker may not write
// to, are permanent errors with a reason a person can act on: retrying
// cannot heal them.
func TestNameTooLongAndDeniedArePermanent(t *testing.T) {
	s := storagetest.NewLocalStore(t)
	ctx := t.Context()
	name := strings.Repeat("n", 246) + ".caption.json"
	err := s.Put(ctx, "out/"+name, strings.NewReader("{}"), 2, "application/json")
	var pe *storage.PermanentError
	if !errors.As(err, &pe) || !errors.Is(err, storage.ErrNameTooLong) || !storage.IsPermanent(err) || storage.IsTransient(err) {
		t.Fatalf("Put of a %d-char name = %v, want a permanent ErrNameTooLong", len(name), err)
	}
	if want := "name too long (259 chars; the limit is 255 bytes per path element)"; pe.Reason != want {
		t.Errorf("reason %q, want %q", pe.Reason, want)
	}
	if os.Geteuid() == 0 {
		return // root writes anywhere
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.MkdirAll(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	ro, err := localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	err = ro.Put(ctx, "a.json", strings.NewReader("{}"), 2, "application/json")
	if !errors.Is(err, storage.ErrAccessDenied) || !storage.IsPermanent(err) {
		t.Errorf("Put into a read-only folder = %v, want a permanent ErrAccessDenied", err)
	}
}
