package jobs_test

import (
	"encoding/json"
	"strings"
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

// TestPayloadBytesUnchanged pins the JSON of the typed fields: an item
// payload and a manifest entry encode exactly as they did when Type and
// Kind were plain strings.
func TestPayloadBytesUnchanged(t *testing.T) {
	p := jobs.ItemPayload{Batch: "b", Item: "i", Source: jobs.Ref{Location: "/s", Key: "k.pdf"},
		Type: jobs.FilePDF, Kind: jobs.KindDocument, Task: jobs.TaskSummarize, Out: "/o", ResultBase: "k.pdf"}
	task, err := jobs.NewItemTask(p, jobs.QueueDefault, 1)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":1,"batch":"b","item":"i","source":{"location":"/s","key":"k.pdf"},"type":"pdf","kind":"document","task":"summarize","out":"/o","result_base":"k.pdf"}`
	if got := string(task.Payload()); got != want {
		t.Errorf("payload\n got %s\nwant %s", got, want)
	}
	e, err := json.Marshal(jobs.Entry{Item: "i", Kind: jobs.KindImage, Type: jobs.FileHEIC, Status: jobs.StatusSkipped})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(e), `"kind":"image","type":"heic","status":"skipped"`) {
		t.Errorf("entry %s", e)
	}
	got, err := jobs.DecodeItem([]byte(want))
	if err != nil || got.Type != jobs.FilePDF || got.Kind != jobs.KindDocument {
		t.Errorf("decode: %+v, %v", got, err)
	}
}
