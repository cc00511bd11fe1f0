package storagetest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/llamapipe/llamapipe/storage"
)

// Run runs the conformance suite against the backend that open returns.
// open is called once per subtest and must return an empty Store that it
// cleans up with t.Cleanup. For S3-like backends the multipart part size
// should be at most TestPartSize so that LargeObject goes multipart.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"PutGet", testPutGet},
		{"Range", testRange},
		{"SizeMismatch", testSizeMismatch},
		{"AtomicOverwrite", testAtomicOverwrite},
		{"Stat", testStat},
		{"ListOrder", testListOrder},
		{"ListStartAfter", testListStartAfter},
		{"ListPaging", testListPaging},
		{"ListNoEmptyFolders", testListNoEmptyFolders},
		{"Delete", testDelete},
		{"Missing", testMissing},
		{"InvalidKeys", testInvalidKeys},
		{"LargeObject", testLargeObject},
		{"Cancel", testCancel},
		{"ConcurrentPutDelete", testConcurrentPutDelete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if s.Location() == "" {
				t.Fatal("Location() is empty")
			}
			tc.fn(t, s)
		})
	}
}

func put(t *testing.T, s storage.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), "application/octet-stream"); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func get(t *testing.T, s storage.Store, key string, rng *storage.Range) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key, rng)
	if err != nil {
		t.Fatalf("Get(%q, %+v): %v", key, rng, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q, %+v): read: %v", key, rng, err)
	}
	return b
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// onlyReader hides any Seek or WriterTo method so backends see a plain
// stream of unknown length.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func list(t *testing.T, s storage.Store, prefix string, opts storage.ListOptions) []storage.ObjectInfo {
	t.Helper()
	var got []storage.ObjectInfo
	for info, err := range s.List(t.Context(), prefix, opts) {
		if err != nil {
			t.Fatalf("List(%q, %+v): %v", prefix, opts, err)
		}
		got = append(got, info)
	}
	return got
}

// keys renders a listing as keys, prefix entries marked with a trailing "*"
// unless their key already ends in "/".
func keys(infos []storage.ObjectInfo) []string {
	out := make([]string, 0, len(infos))
	for _, in := range infos {
		k := in.Key
		if in.IsPrefix && !strings.HasSuffix(k, "/") {
			k += "*"
		}
		if !in.IsPrefix && strings.HasSuffix(k, "/") {
			k += "(object)"
		}
		out = append(out, k)
	}
	return out
}

func testPutGet(t *testing.T, s storage.Store) {
	cases := map[string][]byte{
		"top.txt":                        []byte("hello"),
		"dir/nested/deep/file.bin":       randomBytes(t, 4096),
		"with space+plus/ü&=?#%.txt":     []byte("odd key"),
		"empty":                          {},
		"dir/nested/sibling.json":        []byte(`{"a":1}`),
		"./dot/./normalised//double.txt": []byte("canonical form"),
	}
	for k, v := range cases {
		put(t, s, k, v)
	}
	for k, v := range cases {
		if got := get(t, s, k, nil); !bytes.Equal(got, v) {
			t.Errorf("Get(%q) = %d bytes, want %d (%q...)", k, len(got), len(v), trunc(got))
		}
	}
	// The canonical form names the same object.
	if got := get(t, s, "dot/normalised/double.txt", nil); string(got) != "canonical form" {
		t.Errorf("Get of the canonical key = %q", got)
	}
	// Unknown size, non-seekable reader.
	put2 := []byte("streamed with unknown size")
	if err := s.Put(t.Context(), "stream", onlyReader{bytes.NewReader(put2)}, -1, ""); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "stream", nil); !bytes.Equal(got, put2) {
		t.Errorf("Get(stream) = %q", got)
	}
	// Overwrite replaces the content entirely (shorter content too).
	put(t, s, "top.txt", []byte("hi"))
	if got := get(t, s, "top.txt", nil); string(got) != "hi" {
		t.Errorf("after overwrite Get = %q, want %q", got, "hi")
	}
}

func trunc(b []byte) []byte {
	if len(b) > 20 {
		return b[:20]
	}
	return b
}

func testRange(t *testing.T, s storage.Store) {
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	put(t, s, "r", data)
	for _, tc := range []struct {
		rng      *storage.Range
		from, to int
	}{
		{nil, 0, 1000},
		{&storage.Range{}, 0, 1000},
		{&storage.Range{Offset: 0, Length: 10}, 0, 10},
		{&storage.Range{Offset: 10}, 10, 1000},
		{&storage.Range{Offset: 10, Length: -1}, 10, 1000},
		{&storage.Range{Offset: 500, Length: 1}, 500, 501},
		{&storage.Range{Offset: 999, Length: 1}, 999, 1000},
		{&storage.Range{Offset: 990, Length: 100}, 990, 1000}, // clipped at the end
	} {
		if got := get(t, s, "r", tc.rng); !bytes.Equal(got, data[tc.from:tc.to]) {
			t.Errorf("Get(r, %+v) = %d bytes, want bytes [%d:%d]", tc.rng, len(got), tc.from, tc.to)
		}
	}
	for _, rng := range []storage.Range{{Offset: 1000}, {Offset: 5000, Length: 3}, {Offset: -1, Length: 3}} {
		rc, err := s.Get(t.Context(), "r", &rng)
		if err == nil {
			rc.Close()
			t.Errorf("Get(r, %+v) on a 1000-byte object: no error", rng)
			continue
		}
		if !errors.Is(err, storage.ErrInvalidRange) {
			t.Errorf("Get(r, %+v) = %v, want ErrInvalidRange", rng, err)
		}
		if storage.IsTransient(err) {
			t.Errorf("Get(r, %+v): IsTransient(%v) = true", rng, err)
		}
	}
	if _, err := s.Get(t.Context(), "absent", &storage.Range{Offset: 3}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("range Get of a missing key = %v, want ErrNotExist", err)
	}
}

func testSizeMismatch(t *testing.T, s storage.Store) {
	put(t, s, "kept", []byte("original"))
	for _, tc := range []struct {
		key  string
		body string
		size int64
	}{
		{"short", "12345", 10},
		{"long", "1234567890", 5},
		{"kept", "12345", 10},
	} {
		err := s.Put(t.Context(), tc.key, strings.NewReader(tc.body), tc.size, "")
		if err == nil {
			t.Errorf("Put(%q) of %d bytes declared as %d: no error", tc.key, len(tc.body), tc.size)
		}
	}
	for _, k := range []string{"short", "long"} {
		if _, err := s.Stat(t.Context(), k); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after a failed Put, Stat(%q) = %v, want ErrNotExist", k, err)
		}
	}
	if got := get(t, s, "kept", nil); string(got) != "original" {
		t.Errorf("a failed overwrite changed the object to %q", got)
	}
}

func testAtomicOverwrite(t *testing.T, s storage.Store) {
	const key = "atomic/obj"
	// Version v has size 64 KiB + v*1 KiB, every byte equal to v.
	version := func(v int) []byte { return bytes.Repeat([]byte{byte(v)}, 64<<10+v<<10) }
	put(t, s, key, version(0))
	const writes = 12
	ctx := t.Context()
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 16)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for reads := 0; ; reads++ {
				select {
				case <-done:
					if reads > 0 {
						return
					}
				default:
				}
				rc, err := s.Get(ctx, key, nil)
				if err != nil {
					errs <- fmt.Errorf("concurrent Get: %w", err)
					return
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					errs <- fmt.Errorf("concurrent read: %w", err)
					return
				}
				if len(b) == 0 {
					errs <- fmt.Errorf("read an empty object")
					return
				}
				v := int(b[0])
				if !bytes.Equal(b, version(v)) {
					errs <- fmt.Errorf("read %d bytes starting with version %d: a torn or mixed object", len(b), v)
					return
				}
			}
		}()
	}
	for v := 1; v <= writes; v++ {
		if err := s.Put(ctx, key, bytes.NewReader(version(v)), -1, ""); err != nil {
			t.Errorf("Put version %d: %v", v, err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := get(t, s, key, nil); !bytes.Equal(got, version(writes)) {
		t.Errorf("final content is not the last version written")
	}
}

func testStat(t *testing.T, s storage.Store) {
	ctx := t.Context()
	put(t, s, "s/obj", []byte("first version"))
	a, err := s.Stat(ctx, "s/obj")
	if err != nil {
		t.Fatal(err)
	}
	if a.Key != "s/obj" || a.Size != int64(len("first version")) || a.ETag == "" || a.Modified.IsZero() || a.IsPrefix {
		t.Errorf("Stat = %+v", a)
	}
	if strings.Contains(a.ETag, `"`) {
		t.Errorf("ETag %q contains quotes", a.ETag)
	}
	b, err := s.Stat(ctx, "s/obj")
	if err != nil {
		t.Fatal(err)
	}
	if b.ETag != a.ETag || b.Size != a.Size || !b.Modified.Equal(a.Modified) {
		t.Errorf("Stat of an unchanged object changed: %+v then %+v", a, b)
	}
	// Reading does not change it either.
	get(t, s, "s/obj", nil)
	if c, err := s.Stat(ctx, "s/obj"); err != nil || c.ETag != a.ETag {
		t.Errorf("after Get, Stat = %+v, %v; want ETag %q", c, err, a.ETag)
	}
	// List agrees with Stat.
	l := list(t, s, "s/", storage.ListOptions{Recursive: true})
	if len(l) != 1 || l[0].ETag != a.ETag || l[0].Size != a.Size || l[0].Key != a.Key {
		t.Errorf("List = %+v, Stat = %+v", l, a)
	}
	// Overwrite with content of the same size: the ETag must change.
	put(t, s, "s/obj", []byte("other version"))
	c, err := s.Stat(ctx, "s/obj")
	if err != nil {
		t.Fatal(err)
	}
	if c.ETag == a.ETag {
		t.Errorf("ETag %q unchanged after overwriting with different content", c.ETag)
	}
	if c.Size != a.Size {
		t.Errorf("Size = %d, want %d", c.Size, a.Size)
	}
	// And with a different size.
	put(t, s, "s/obj", []byte("third, longer version"))
	d, err := s.Stat(ctx, "s/obj")
	if err != nil {
		t.Fatal(err)
	}
	if d.ETag == c.ETag || d.Size != int64(len("third, longer version")) {
		t.Errorf("after second overwrite Stat = %+v (previous %+v)", d, c)
	}
}
