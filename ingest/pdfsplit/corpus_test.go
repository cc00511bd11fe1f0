package pdfsplit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// corpusDir finds shared/corpus/pdfs by walking up from the package dir
// (the corpus is a sibling of the repository root).
func corpusDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("getwd: %v", err)
	}
	for {
		p := filepath.Join(dir, "shared", "corpus", "pdfs")
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("test corpus not found: no shared/corpus/pdfs in any parent of the package dir (expected e.g. ../../../shared/corpus/pdfs)")
		}
		dir = parent
	}
}

// corpusFiles lists *.pdf in one corpus folder, sorted; fails if none.
func corpusFiles(tb testing.TB, folder string) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(corpusDir(tb), folder, "*.pdf"))
	if err != nil {
		tb.Fatalf("glob %s: %v", folder, err)
	}
	if len(files) == 0 {
		tb.Fatalf("no PDFs in corpus folder %s", folder)
	}
	sort.Strings(files)
	return files
}

// passwords reads passwords.json (relative path -> password or null).
func passwords(tb testing.TB) map[string]*string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir(tb), "passwords.json"))
	if err != nil {
		tb.Fatalf("read passwords.json: %v", err)
	}
	m := map[string]*string{}
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatalf("decode passwords.json: %v", err)
	}
	return m
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return b
}

// rel returns "folder/name.pdf" for a corpus path.
func rel(path string) string {
	return filepath.Base(filepath.Dir(path)) + "/" + filepath.Base(path)
}
