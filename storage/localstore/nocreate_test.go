package localstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
)

// Opening and reading a folder that does not exist creates nothing and
// says that the folder does not exist; the first Put creates it.
func TestMissingRootIsReportedNotCreated(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "no", "such")
	s, err := localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrNotExist) || !strings.Contains(err.Error(), dir+" does not exist") {
			t.Errorf("%s: %v, want ErrNotExist saying %s does not exist", what, err, dir)
		}
	}
	check("CheckRoot", s.CheckRoot())
	_, err = s.Get(ctx, "a.txt", nil)
	check("Get", err)
	_, err = s.Stat(ctx, "a.txt")
	check("Stat", err)
	n := 0
	for _, err := range s.List(ctx, "", storage.ListOptions{Recursive: true}) {
		check("List", err)
		n++
	}
	if n != 1 {
		t.Errorf("List yielded %d results, want the one error", n)
	}
	if err := s.Delete(ctx, "a.txt"); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(parent, "no")); !os.IsNotExist(err) {
		t.Fatalf("reading created a folder: %v", err)
	}
	if err := s.Put(ctx, "a.txt", strings.NewReader("x"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "a.txt"); err != nil {
		t.Errorf("Stat after Put: %v", err)
	}
	if err := s.CheckRoot(); err != nil {
		t.Errorf("CheckRoot after Put: %v", err)
	}
	for _, err := range s.List(ctx, "missing/", storage.ListOptions{}) {
		t.Errorf("List of a missing folder below the root: %v, want nothing", err)
	}
}

// A root that is a file is refused at Open.
func TestRootThatIsAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := localstore.Open(f); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("Open(a file): %v, want refused as not a folder", err)
	}
}
