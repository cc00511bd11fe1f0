package sniff_test

import (
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/sniff"
)

func TestMismatch(t *testing.T) {
	for _, c := range []struct {
		name string
		t    jobs.FileType
		want string
	}{
		{"photo.jpg", jobs.FileTXT, "named .jpg but holds plain text"},
		{"PHOTO.JPEG", jobs.FilePDF, "named .jpeg but holds a PDF document"},
		{"x.png", jobs.FileUnknown, "named .png but holds unrecognised binary content"},
		{"scan.pdf", jobs.FileJPEG, "named .pdf but holds a JPEG image"},
		{"notes.txt", jobs.FilePNG, "named .txt but holds a PNG image"},
		{"x.png", jobs.FileJPEG, ""},       // an image either way
		{"contract.pdf", jobs.FileTXT, ""}, // a document either way
		{"contract.pdf", jobs.FileZip, ""}, // a document name on other content: the type decides
		{"README", jobs.FileJPEG, ""},      // the name claims nothing
		{"photo.heic", jobs.FileAVIF, ""},
	} {
		if got := sniff.Mismatch(c.name, c.t); got != c.want {
			t.Errorf("Mismatch(%q, %s) = %q, want %q", c.name, c.t, got, c.want)
		}
	}
}
