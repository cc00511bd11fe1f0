//go:build unix

package localstore_test

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
)

// A named pipe is not an object; Get must not block on it.
func TestFIFOIsNotAnObject(t *testing.T) {
	root := t.TempDir()
	s, err := localstore.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := syscall.Mkfifo(filepath.Join(root, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), "pipe", nil); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Get(pipe) = %v, want ErrNotExist", err)
	}
}
