package jobs_test

import (
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
)

func TestFileTypeKind(t *testing.T) {
	docs := []jobs.FileType{jobs.FilePDF, jobs.FileDOCX, jobs.FileTXT, jobs.FileMarkdown, jobs.FileHTML}
	imgs := []jobs.FileType{jobs.FileJPEG, jobs.FilePNG, jobs.FileGIF, jobs.FileWebP, jobs.FileBMP,
		jobs.FileTIFF, jobs.FileHEIC, jobs.FileAVIF, jobs.FileSVG}
	for _, d := range docs {
		if d.Kind() != "document" {
			t.Errorf("%s.Kind() = %q", d, d.Kind())
		}
	}
	for _, i := range imgs {
		if i.Kind() != "image" {
			t.Errorf("%s.Kind() = %q", i, i.Kind())
		}
	}
	for _, o := range []jobs.FileType{jobs.FileZip, jobs.FileUnknown, "", "exe"} {
		if o.Kind() != "other" {
			t.Errorf("%q.Kind() = %q", o, o.Kind())
		}
	}
}

// TestFileTypeValues pins the strings payloads and manifests carry.
func TestFileTypeValues(t *testing.T) {
	for c, want := range map[jobs.FileType]string{
		jobs.FilePDF: "pdf", jobs.FileDOCX: "docx", jobs.FileTXT: "txt", jobs.FileMarkdown: "md",
		jobs.FileHTML: "html", jobs.FileJPEG: "jpeg", jobs.FilePNG: "png", jobs.FileGIF: "gif",
		jobs.FileWebP: "webp", jobs.FileBMP: "bmp", jobs.FileTIFF: "tiff", jobs.FileHEIC: "heic",
		jobs.FileAVIF: "avif", jobs.FileSVG: "svg", jobs.FileZip: "zip", jobs.FileUnknown: "unknown",
	} {
		if string(c) != want {
			t.Errorf("%q, want %q", c, want)
		}
	}
	for c, want := range map[jobs.Kind]string{jobs.KindDocument: "document", jobs.KindImage: "image", jobs.KindOther: "other"} {
		if string(c) != want {
			t.Errorf("%q, want %q", c, want)
		}
	}
}
