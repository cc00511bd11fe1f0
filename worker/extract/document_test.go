package extract_test

import (
	"errors"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/extract"
)

func TestDocumentByType(t *testing.T) {
	for _, c := range []struct {
		typ  jobs.FileType
		data string
		want string
	}{
		{jobs.FileTXT, "plain words", "plain words"},
		{jobs.FileMarkdown, "# Title\n\nbody", "# Title\n\nbody"},
		{jobs.FileHTML, "<html><body><p>visible</p><script>hidden()</script></body></html>", "visible"},
	} {
		got, err := extract.Document(c.typ, []byte(c.data), extract.Limits{})
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.typ, got, err, c.want)
		}
	}
	for _, typ := range []jobs.FileType{jobs.FilePDF, jobs.FileJPEG, jobs.FileUnknown} {
		if _, err := extract.Document(typ, []byte("x"), extract.Limits{}); !errors.Is(err, extract.ErrNotText) {
			t.Errorf("%s: %v, want ErrNotText", typ, err)
		}
	}
	if _, err := extract.Document(jobs.FileDOCX, []byte("not a zip"), extract.Limits{}); !errors.Is(err, extract.ErrCorrupt) {
		t.Errorf("a broken DOCX: %v, want ErrCorrupt", err)
	}
}
