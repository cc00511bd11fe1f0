package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
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

// listFixture is a set of keys whose lexical order differs from a naive
// depth-first walk ("a-c" and "a.txt" sort before "a/...").
var listFixture = []string{"a/c/d", "b", "a-c", "a/b", "ab/x", "a.txt", "a/c.txt", "ab/y/z"}

func testListOrder(t *testing.T, s storage.Store) {
	for _, k := range listFixture {
		put(t, s, k, []byte(k))
	}
	for _, tc := range []struct {
		prefix    string
		recursive bool
		want      []string
	}{
		{"", true, []string{"a-c", "a.txt", "a/b", "a/c.txt", "a/c/d", "ab/x", "ab/y/z", "b"}},
		{"", false, []string{"a-c", "a.txt", "a/", "ab/", "b"}},
		{"a", true, []string{"a-c", "a.txt", "a/b", "a/c.txt", "a/c/d", "ab/x", "ab/y/z"}},
		{"a", false, []string{"a-c", "a.txt", "a/", "ab/"}},
		{"a/", true, []string{"a/b", "a/c.txt", "a/c/d"}},
		{"a/", false, []string{"a/b", "a/c.txt", "a/c/"}},
		{"a/c", false, []string{"a/c.txt", "a/c/"}},
		{"a/c/", false, []string{"a/c/d"}},
		{"ab/", false, []string{"ab/x", "ab/y/"}},
		{"ab/y/z", true, []string{"ab/y/z"}},
		{"zzz", true, nil},
		{"nope/", false, nil},
		{"a/b/", true, nil}, // a/b is an object, not a folder
	} {
		got := keys(list(t, s, tc.prefix, storage.ListOptions{Recursive: tc.recursive}))
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, recursive=%v) = %q, want %q", tc.prefix, tc.recursive, got, tc.want)
		}
	}
	// Objects carry their size; prefix entries carry nothing.
	for _, in := range list(t, s, "", storage.ListOptions{}) {
		if in.IsPrefix && (in.Size != 0 || in.ETag != "") {
			t.Errorf("prefix entry %+v has object fields", in)
		}
		if !in.IsPrefix && (in.Size != int64(len(in.Key)) || in.ETag == "") {
			t.Errorf("object entry %+v: want size %d and an ETag", in, len(in.Key))
		}
	}
}

func testListStartAfter(t *testing.T, s storage.Store) {
	for _, k := range listFixture {
		put(t, s, k, []byte(k))
	}
	for _, tc := range []struct {
		prefix     string
		startAfter string
		recursive  bool
		want       []string
	}{
		{"", "a/b", true, []string{"a/c.txt", "a/c/d", "ab/x", "ab/y/z", "b"}},
		{"", "a/bb", true, []string{"a/c.txt", "a/c/d", "ab/x", "ab/y/z", "b"}}, // not a key
		{"", "a", true, []string{"a-c", "a.txt", "a/b", "a/c.txt", "a/c/d", "ab/x", "ab/y/z", "b"}},
		{"", "b", true, nil},
		{"", "zzz", true, nil},
		{"a/", "a/c.txt", true, []string{"a/c/d"}},
		{"", "a.txt", false, []string{"a/", "ab/", "b"}},
		{"", "a/", false, []string{"ab/", "b"}},
		{"", "a/b", false, []string{"ab/", "b"}},
	} {
		got := keys(list(t, s, tc.prefix, storage.ListOptions{Recursive: tc.recursive, StartAfter: tc.startAfter}))
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, recursive=%v, StartAfter=%q) = %q, want %q", tc.prefix, tc.recursive, tc.startAfter, got, tc.want)
		}
	}
	// Resuming with the last key seen, one entry per call (breaking out of
	// the iterator each time), gives the whole listing.
	for _, recursive := range []bool{true, false} {
		full := keys(list(t, s, "", storage.ListOptions{Recursive: recursive}))
		var resumed []string
		last := ""
		for range len(full) + 2 {
			var got *storage.ObjectInfo
			for in, err := range s.List(t.Context(), "", storage.ListOptions{Recursive: recursive, StartAfter: last, PageSize: 2}) {
				if err != nil {
					t.Fatal(err)
				}
				got = &in
				break
			}
			if got == nil {
				break
			}
			resumed = append(resumed, keys([]storage.ObjectInfo{*got})...)
			last = got.Key
		}
		if !slices.Equal(resumed, full) {
			t.Errorf("recursive=%v: resumed listing %q, want %q", recursive, resumed, full)
		}
	}
}

func testListPaging(t *testing.T, s storage.Store) {
	var want []string
	for i := range 23 {
		k := fmt.Sprintf("p/%02d", i)
		put(t, s, k, []byte{byte(i)})
		want = append(want, k)
	}
	var wantTop []string
	for i := range 7 {
		k := fmt.Sprintf("q/d%d/", i)
		put(t, s, k+"x", nil)
		put(t, s, k+"y", nil)
		wantTop = append(wantTop, k)
		if i%2 == 0 {
			f := fmt.Sprintf("q/f%d", i)
			put(t, s, f, nil)
			wantTop = append(wantTop, f)
		}
	}
	slices.Sort(wantTop)
	for _, pageSize := range []int{1, 4, 5, 0} {
		if got := keys(list(t, s, "p/", storage.ListOptions{Recursive: true, PageSize: pageSize})); !slices.Equal(got, want) {
			t.Errorf("PageSize %d: List(p/) = %q, want %q", pageSize, got, want)
		}
		if got := keys(list(t, s, "q/", storage.ListOptions{PageSize: pageSize})); !slices.Equal(got, wantTop) {
			t.Errorf("PageSize %d: non-recursive List(q/) = %q, want %q", pageSize, got, wantTop)
		}
		got := keys(list(t, s, "p/", storage.ListOptions{Recursive: true, PageSize: pageSize, StartAfter: "p/10"}))
		if !slices.Equal(got, want[11:]) {
			t.Errorf("PageSize %d, StartAfter p/10: List = %q, want %q", pageSize, got, want[11:])
		}
	}
	// Stopping early stops cleanly.
	n := 0
	for _, err := range s.List(t.Context(), "p/", storage.ListOptions{Recursive: true, PageSize: 4}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 6 {
			break
		}
	}
	if n != 6 {
		t.Errorf("early stop after %d entries", n)
	}
}

func testListNoEmptyFolders(t *testing.T, s storage.Store) {
	put(t, s, "gone/deep/er/x", []byte("x"))
	put(t, s, "stays/y", []byte("y"))
	if err := s.Delete(t.Context(), "gone/deep/er/x"); err != nil {
		t.Fatal(err)
	}
	if got := keys(list(t, s, "", storage.ListOptions{})); !slices.Equal(got, []string{"stays/"}) {
		t.Errorf("non-recursive List after deleting the only object of gone/ = %q, want [stays/]", got)
	}
	if got := keys(list(t, s, "", storage.ListOptions{Recursive: true})); !slices.Equal(got, []string{"stays/y"}) {
		t.Errorf("recursive List = %q", got)
	}
	// The key space is usable again.
	put(t, s, "gone/deep", []byte("now an object"))
	if got := get(t, s, "gone/deep", nil); string(got) != "now an object" {
		t.Errorf("Get = %q", got)
	}
}

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
