package imageprep

import (
	"os"
	"path/filepath"
	"testing"
)

// corpusDir finds shared/corpus/images by walking up from the package
// directory to the repository root's parent (…/shared/corpus is a sibling of
// the repository).
func corpusDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("getwd: %v", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		c := filepath.Join(d, "shared", "corpus", "images")
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	tb.Fatalf("test corpus not found: no shared/corpus/images above %s (expected /work/shared/corpus/images next to the repository)", dir)
	return ""
}

func readCorpus(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir(tb), rel))
	if err != nil {
		tb.Fatalf("read corpus file: %v", err)
	}
	return b
}
