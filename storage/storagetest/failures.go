package storagetest

// The failure part of the conformance suite: delete, missing objects,
// invalid keys, large objects, cancellation, concurrent put and delete.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llamapipe/llamapipe/storage"
)

func testDelete(t *testing.T, s storage.Store) {
	ctx := t.Context()
	put(t, s, "d/x", []byte("x"))
	put(t, s, "d/y", []byte("y"))
	if err := s.Delete(ctx, "d/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "d/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after Delete = %v, want ErrNotExist", err)
	}
	if _, err := s.Get(ctx, "d/x", nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get after Delete = %v, want ErrNotExist", err)
	}
	for _, k := range []string{"d/x", "never/was", "d"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Errorf("Delete(%q) of a missing object = %v, want nil", k, err)
		}
	}
	if got := get(t, s, "d/y", nil); string(got) != "y" {
		t.Errorf("sibling d/y = %q after deletes", got)
	}
	if got := keys(list(t, s, "", storage.ListOptions{Recursive: true})); !slices.Equal(got, []string{"d/y"}) {
		t.Errorf("List after deletes = %q", got)
	}
}

func testMissing(t *testing.T, s storage.Store) {
	ctx := t.Context()
	put(t, s, "folder/obj", []byte("x"))
	for _, k := range []string{"missing", "no/such/folder/x", "folder", "folder/obj/below"} {
		_, err := s.Get(ctx, k, nil)
		checkNotExist(t, "Get", k, err)
		_, err = s.Stat(ctx, k)
		checkNotExist(t, "Stat", k, err)
	}
}

func checkNotExist(t *testing.T, op, key string, err error) {
	t.Helper()
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("%s(%q) = %v, want ErrNotExist", op, key, err)
		return
	}
	if storage.IsTransient(err) {
		t.Errorf("%s(%q): IsTransient(%v) = true", op, key, err)
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("%s(%q): error %q does not name the key", op, key, err)
	}
}

// InvalidKeys are keys every backend must refuse with storage.ErrInvalidKey.
var InvalidKeys = []string{"", "../x", "/etc/passwd", "a/../../b", "..", "a/..", `..\x`, "./", "/"}

func testInvalidKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	check := func(op, key string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("%s(%q) = %v, want ErrInvalidKey", op, key, err)
		} else if storage.IsTransient(err) {
			t.Errorf("%s(%q): IsTransient = true", op, key)
		}
	}
	for _, k := range InvalidKeys {
		rc, err := s.Get(ctx, k, nil)
		if err == nil {
			rc.Close()
		}
		check("Get", k, err)
		check("Put", k, s.Put(ctx, k, strings.NewReader("x"), 1, ""))
		_, err = s.Stat(ctx, k)
		check("Stat", k, err)
		check("Delete", k, s.Delete(ctx, k))
		if k == "" {
			continue // the empty prefix lists everything
		}
		var lerr error
		for _, err := range s.List(ctx, k, storage.ListOptions{Recursive: true}) {
			lerr = err
			break
		}
		check("List", k, lerr)
	}
	if got := list(t, s, "", storage.ListOptions{Recursive: true}); len(got) != 0 {
		t.Errorf("refused Puts left objects: %q", keys(got))
	}
}

func testLargeObject(t *testing.T, s storage.Store) {
	ctx := t.Context()
	const size = 12 << 20
	data := randomBytes(t, size)
	if err := s.Put(ctx, "large/known", bytes.NewReader(data), size, "application/octet-stream"); err != nil {
		t.Fatal(err)
	}
	// Unknown size, plain stream, not a multiple of any part size.
	odd := data[:11<<20+12345]
	if err := s.Put(ctx, "large/stream", onlyReader{bytes.NewReader(odd)}, -1, ""); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string][]byte{"large/known": data, "large/stream": odd} {
		st, err := s.Stat(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size != int64(len(want)) {
			t.Errorf("Stat(%q).Size = %d, want %d", k, st.Size, len(want))
		}
		if got := get(t, s, k, nil); sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("Get(%q): %d bytes, content differs from what was put", k, len(got))
		}
	}
	// A range across the 5 MiB part boundary.
	rng := &storage.Range{Offset: 5<<20 - 100, Length: 200}
	if got := get(t, s, "large/known", rng); !bytes.Equal(got, data[rng.Offset:rng.Offset+rng.Length]) {
		t.Errorf("range across a part boundary differs")
	}
}

// cancellingReader yields first, cancels, then yields the rest.
type cancellingReader struct {
	first, rest io.Reader
	cancel      func()
	cancelled   bool
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.first.Read(p)
	if err == io.EOF {
		if !c.cancelled {
			c.cancel()
			c.cancelled = true
		}
		return c.rest.Read(p)
	}
	return n, err
}

func testCancel(t *testing.T, s storage.Store) {
	put(t, s, "c/existing", []byte("keep me"))
	big := randomBytes(t, 12<<20)
	put(t, s, "c/big", big)

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(cancelled, "c/new", strings.NewReader("x"), 1, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.Get(cancelled, "c/existing", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(cancelled, "c/existing"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with a cancelled context = %v, want context.Canceled", err)
	}
	if err := s.Delete(cancelled, "c/existing"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context = %v, want context.Canceled", err)
	}
	var lerr error
	for _, err := range s.List(cancelled, "", storage.ListOptions{Recursive: true}) {
		if err != nil {
			lerr = err
			break
		}
	}
	if !errors.Is(lerr, context.Canceled) {
		t.Errorf("List with a cancelled context yielded %v, want context.Canceled", lerr)
	}
	if storage.IsTransient(lerr) {
		t.Errorf("IsTransient(%v) = true for a cancellation", lerr)
	}

	// Cancelled in the middle of a Put: the object must not appear, the
	// existing one must stay intact.
	for _, k := range []string{"c/new", "c/existing"} {
		ctx, cancel := context.WithCancel(t.Context())
		r := &cancellingReader{first: bytes.NewReader(big[:1<<20]), rest: bytes.NewReader(big[1<<20 : 8<<20]), cancel: cancel}
		err := s.Put(ctx, k, r, 8<<20, "")
		cancel()
		if err == nil {
			t.Errorf("Put(%q) cancelled midway: no error", k)
		}
	}
	if _, err := s.Stat(t.Context(), "c/new"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after a cancelled Put, Stat = %v, want ErrNotExist", err)
	}
	if got := get(t, s, "c/existing", nil); string(got) != "keep me" {
		t.Errorf("a cancelled overwrite changed the object to %q", trunc(got))
	}

	// Cancelled in the middle of reading: the reader fails instead of
	// quietly returning a short object.
	ctx, cancel := context.WithCancel(t.Context())
	rc, err := s.Get(ctx, "c/big", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	cancel()
	n, err := io.Copy(io.Discard, rc)
	if err == nil {
		t.Errorf("reading after cancel: got the remaining %d bytes and no error", n)
	}
}

func testConcurrentPutDelete(t *testing.T, s storage.Store) {
	// Writers in one folder while others delete the folder's last objects:
	// no Put may fail because a Delete tidied the folder away.
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				k := fmt.Sprintf("race/sub/w%d-%d", w, i)
				if err := s.Put(ctx, k, strings.NewReader(k), int64(len(k)), ""); err != nil {
					errs <- err
					return
				}
				if err := s.Delete(ctx, k); err != nil {
					errs <- err
					return
				}
			}
			k := fmt.Sprintf("race/sub/final-%d", w)
			if err := s.Put(ctx, k, strings.NewReader(k), int64(len(k)), ""); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := keys(list(t, s, "race/", storage.ListOptions{Recursive: true}))
	want := []string{"race/sub/final-0", "race/sub/final-1", "race/sub/final-2", "race/sub/final-3"}
	if !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
}
