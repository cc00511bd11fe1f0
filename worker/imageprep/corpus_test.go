package imageprep

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

// corpusDir finds shared/corpus/images (a sibling of the repository) the way
// every test does, through jobstest.CorpusDir.
func corpusDir(tb testing.TB) string {
	tb.Helper()
	return jobstest.CorpusDir(tb, "images")
}

func readCorpus(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir(tb), rel))
	if err != nil {
		tb.Fatalf("read corpus file: %v", err)
	}
	return b
}
