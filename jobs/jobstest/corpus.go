package jobstest

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// CorpusDir finds shared/corpus/<sub...> (a sibling of the repository root)
// by walking up from the test's package folder. A candidate that holds no
// file at all (a stray empty shared/corpus tree nearer the package, as a
// test writing to a relative path can leave) is passed over.
func CorpusDir(tb testing.TB, sub ...string) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("getwd: %v", err)
	}
	want := filepath.Join(append([]string{"shared", "corpus"}, sub...)...)
	for {
		p := filepath.Join(dir, want)
		if st, err := os.Stat(p); err == nil && st.IsDir() && holdsFile(p) {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("test corpus not found: no %s in any parent of the package folder (it belongs beside the repository: ../shared/corpus)", want)
		}
		dir = parent
	}
}

// holdsFile reports whether the tree under dir has at least one regular
// file; it stops at the first.
func holdsFile(dir string) bool {
	found := errors.New("found")
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			return found
		}
		return nil
	})
	return err == found
}

// CorpusFiles lists the files of one corpus folder matching a glob, sorted;
// it fails when there are none.
func CorpusFiles(tb testing.TB, glob string, folder ...string) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(CorpusDir(tb, folder...), glob))
	if err != nil {
		tb.Fatalf("glob %v/%s: %v", folder, glob, err)
	}
	if len(files) == 0 {
		tb.Fatalf("no %s in corpus folder %v", glob, folder)
	}
	sort.Strings(files)
	return files
}

// PDFPasswords reads shared/corpus/pdfs/passwords.json (folder/name.pdf →
// password, or null when unknown).
func PDFPasswords(tb testing.TB) map[string]*string {
	tb.Helper()
	m := map[string]*string{}
	if err := json.Unmarshal(ReadFile(tb, filepath.Join(CorpusDir(tb, "pdfs"), "passwords.json")), &m); err != nil {
		tb.Fatalf("decode passwords.json: %v", err)
	}
	return m
}

// ReadFile reads a file or fails the test.
func ReadFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return b
}
