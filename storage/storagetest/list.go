package storagetest

// The listing part of the conformance suite: order, StartAfter, paging,
// and no empty folders.

import (
	"fmt"
	"slices"
	"testing"

	"github.com/llamapipe/llamapipe/storage"
)

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
