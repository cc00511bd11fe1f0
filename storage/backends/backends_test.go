package backends_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/storage/s3store"
	"github.com/llamapipe/llamapipe/storage/storagetest"
)

func roundTrip(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := t.Context()
	if err := s.Put(ctx, "k/v.txt", strings.NewReader("value"), 5, "text/plain"); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "k/v.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, err := io.ReadAll(rc); err != nil || string(b) != "value" {
		t.Errorf("Get = %q, %v", b, err)
	}
}

func TestOpenLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	for _, loc := range []string{dir, "file://" + dir} {
		s, err := backends.Open(t.Context(), loc, backends.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ls, ok := s.(*localstore.Store)
		if !ok {
			t.Fatalf("Open(%q) = %T, want *localstore.Store", loc, s)
		}
		if s.Location() != dir {
			t.Errorf("Open(%q).Location() = %q, want %q", loc, s.Location(), dir)
		}
		roundTrip(t, s)
		ls.Close()
	}
	if b, err := os.ReadFile(filepath.Join(dir, "k", "v.txt")); err != nil || string(b) != "value" {
		t.Errorf("file on disk: %q, %v", b, err)
	}
}

func TestOpenS3(t *testing.T) {
	bucketStore := storagetest.NewS3Store(t, "")
	loc := "s3://" + bucketStore.Bucket() + "/runs/1/"
	s, err := backends.Open(t.Context(), loc, backends.Config{S3: storagetest.S3Config(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*s3store.Store); !ok {
		t.Fatalf("Open(%q) = %T, want *s3store.Store", loc, s)
	}
	if want := "s3://" + bucketStore.Bucket() + "/runs/1"; s.Location() != want {
		t.Errorf("Location() = %q, want %q", s.Location(), want)
	}
	roundTrip(t, s)
	// The object sits under the location's prefix.
	if info, err := bucketStore.Stat(t.Context(), "runs/1/k/v.txt"); err != nil || info.Size != 5 {
		t.Errorf("Stat through the bucket = %+v, %v", info, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, loc := range []string{"", "gs://bucket/x", "s3://", "s3://b/../x"} {
		if s, err := backends.Open(t.Context(), loc, backends.Config{}); err == nil {
			t.Errorf("Open(%q) = %v, want an error", loc, s.Location())
		}
	}
	if _, err := backends.Open(t.Context(), "s3://b/../x", backends.Config{}); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Open(s3://b/../x) = %v, want ErrInvalidKey", err)
	}
}
