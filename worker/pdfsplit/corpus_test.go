package pdfsplit

import (
	"path/filepath"
	"testing"

	"github.com/llamapipe/llamapipe/jobs/jobstest"
)

func corpusDir(tb testing.TB) string { return jobstest.CorpusDir(tb, "pdfs") }

// corpusFiles lists *.pdf in one corpus folder, sorted; fails if none.
func corpusFiles(tb testing.TB, folder string) []string {
	return jobstest.CorpusFiles(tb, "*.pdf", "pdfs", folder)
}

func passwords(tb testing.TB) map[string]*string { return jobstest.PDFPasswords(tb) }

func readFile(tb testing.TB, path string) []byte { return jobstest.ReadFile(tb, path) }

// rel returns "folder/name.pdf" for a corpus path.
func rel(path string) string {
	return filepath.Base(filepath.Dir(path)) + "/" + filepath.Base(path)
}
