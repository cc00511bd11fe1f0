package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/fingerprint"
	"github.com/llamapipe/llamapipe/jobs/sniff"
	"github.com/llamapipe/llamapipe/storage"
)

// classify reads an object's head and decides its type, kind and task, or
// why it is skipped.
func (in *Ingester) classify(ctx context.Context, pr *prepared, c candidate) Item {
	o := pr.o
	it := Item{
		ID:         jobs.ItemID(c.src.url, c.info.Key),
		Ref:        jobs.Ref{Location: c.src.url, Key: c.info.Key, ETag: c.info.ETag, Size: c.info.Size},
		Store:      c.src.store,
		Kind:       jobs.KindOther,
		ResultBase: jobs.ResultBase(c.src.index, len(pr.sources), c.src.url, c.info.Key),
	}
	if c.resultBase != "" {
		it.ResultBase = c.resultBase
	}
	skip := func(reason string) Item { it.Skip = reason; return it }
	if c.row != nil {
		return pr.feedItem(it, c.row)
	}
	if c.gone {
		return skip("source no longer exists (deleted since the batch it retries)")
	}
	if c.part != "" {
		return in.retriedAttachment(ctx, pr, c, it)
	}
	// Unchanged since the last run? Decided from the listing alone, before
	// any request for the object itself. (A marker listing that failed
	// fails the batch: see scan.)
	if pr.unchanged(&it) {
		return skip(unchangedReason)
	}
	if c.info.Size == 0 {
		return skip("empty file (0 bytes)")
	}
	if c.info.Size > o.MaxSize {
		return skip(fmt.Sprintf("too large: %d bytes is over the %d-byte limit (--max-size)", c.info.Size, o.MaxSize))
	}
	head, err := readHead(ctx, c.src.store, c.info.Key)
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return skip("source no longer exists (deleted after listing)")
		}
		return skip("unreadable: " + err.Error())
	}
	it.Head = head
	return pr.decide(it, path.Base(c.info.Key))
}

const unchangedReason = "unchanged since the last run (same content, prompts, model and options): results kept"

// unchanged reports (and marks it) whether item it's results are current.
func (pr *prepared) unchanged(it *Item) bool {
	o := pr.o
	current, _ := pr.markers()
	for _, task := range []string{jobs.TaskCaption, jobs.TaskSummarize} {
		if (o.Task == jobs.TaskAuto || o.Task == task) && it.Ref.ETag != "" && pr.marked(current, *it, task) {
			it.Task, it.Kind = task, jobs.KindDocument
			if task == jobs.TaskCaption {
				it.Kind = jobs.KindImage
			}
			it.Unchanged = true
			return true
		}
	}
	return false
}

// marked reports whether item it has a current fingerprint marker for
// task. Its type is not known yet: a .eml name is taken for an email
// (its own prompt); for another name, both summary fingerprints are tried.
func (pr *prepared) marked(current map[string]bool, it Item, task string) bool {
	types := []jobs.FileType{it.Type}
	if it.Type == "" && task == jobs.TaskSummarize {
		types = []jobs.FileType{"", jobs.FileEML}
		if strings.EqualFold(path.Ext(it.ResultBase), ".eml") {
			types = []jobs.FileType{jobs.FileEML}
		}
	}
	for _, t := range types {
		it.Type = t
		if current[fingerprint.Key(it.ResultBase, task, pr.fingerprint(it, task))] {
			return true
		}
	}
	return false
}

// skipReasons are the file types we name but do not read, and what to do.
var skipReasons = map[jobs.FileType]string{
	jobs.FileMSG: "Outlook .msg files are not read: save the messages as .eml (drag them out of Outlook on the web, or " +
		"Thunderbird's Save As) or convert them with `msgconvert` (Debian package libemail-outlook-message-perl)",
	jobs.FileDOC: "legacy Word .doc is not read: convert it to DOCX or PDF (`libreoffice --headless --convert-to docx FILE`)",
	jobs.FileXLS: "legacy Excel .xls is not read: convert it to XLSX (`libreoffice --headless --convert-to xlsx FILE`)",
	jobs.FilePPT: "legacy PowerPoint .ppt is not read: convert it to PPTX or PDF (`libreoffice --headless --convert-to pdf FILE`)",
}

// decide classifies item it from its head and name: its type, kind and
// task, or why it is skipped or failed.
func (pr *prepared) decide(it Item, name string) Item {
	o := pr.o
	skip := func(reason string) Item { it.Skip = reason; return it }
	it.Type = sniff.Sniff(name, it.Head)
	kind := it.Type.Kind()
	if lie := sniff.Mismatch(name, it.Type); lie != "" && !o.TrustContent {
		it.Kind, it.Failed = sniff.NameKind(name), true
		return skip(lie + " (a broken or mislabelled file; --trust-content processes it by its content)")
	}
	switch {
	case skipReasons[it.Type] != "":
		return skip(skipReasons[it.Type])
	case kind == jobs.KindOther:
		return skip(fmt.Sprintf("unknown file type (%s): not a supported document or image", describe(it.Type)))
	case kind == jobs.KindImage && !decodableImage(it.Type):
		it.Kind = kind
		return skip(fmt.Sprintf("%s images are not supported: convert them to JPEG or PNG", strings.ToUpper(string(it.Type))))
	}
	it.Kind = kind
	switch {
	case o.Task == jobs.TaskAuto && kind == jobs.KindDocument && o.NoDocuments != "":
		return skip(o.NoDocuments + ": documents cannot be summarized with it (only images are captioned); use another model for them")
	case o.Task == jobs.TaskAuto && kind == jobs.KindDocument:
		it.Task = jobs.TaskSummarize
	case o.Task == jobs.TaskAuto && kind == jobs.KindImage:
		it.Task = jobs.TaskCaption
	case o.Task == jobs.TaskCaption && kind != jobs.KindImage:
		return skip("not an image: --task caption processes images only")
	case o.Task == jobs.TaskSummarize && kind != jobs.KindDocument:
		return skip("not a document: --task summarize processes documents only")
	default:
		it.Task = o.Task
	}
	it.Fingerprint = pr.fingerprint(it, it.Task)
	return it
}

func describe(t jobs.FileType) string {
	if t == "" || t == jobs.FileUnknown {
		return "unrecognised content"
	}
	return string(t)
}

// decodableImage reports whether workers can decode an image type.
func decodableImage(t jobs.FileType) bool {
	switch t {
	case jobs.FileJPEG, jobs.FilePNG, jobs.FileGIF, jobs.FileWebP, jobs.FileBMP, jobs.FileTIFF, jobs.FileAVIF, jobs.FileHEIC:
		return true
	}
	return false
}

func readHead(ctx context.Context, st storage.Store, key string) ([]byte, error) {
	rc, err := st.Get(ctx, key, &storage.Range{Offset: 0, Length: sniff.HeadSize})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	head, err := io.ReadAll(io.LimitReader(rc, sniff.HeadSize))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return head, nil
}

// selected applies the output exclusion and the include/exclude globs.
func selected(key, skipPrefix string, include, exclude []string) bool {
	if skipPrefix != "" && (key == skipPrefix || strings.HasPrefix(key, skipPrefix+"/")) {
		return false
	}
	if len(include) > 0 && !matchAny(include, key) {
		return false
	}
	return !matchAny(exclude, key)
}

func matchAny(globs []string, key string) bool {
	for _, g := range globs {
		if ok, _ := doublestar.Match(g, key); ok {
			return true
		}
		// A glob without a slash also matches the base name: "*.pdf".
		if !strings.Contains(g, "/") {
			if ok, _ := doublestar.Match(g, path.Base(key)); ok {
				return true
			}
		}
	}
	return false
}

// insidePrefix returns out's prefix relative to src when out lies inside
// src (results written into the folder being ingested), else "".
func insidePrefix(src, out storage.Location) string {
	if src.Scheme != out.Scheme || src.Bucket != out.Bucket {
		return ""
	}
	if src.Prefix == "" && out.Scheme == "s3" {
		return out.Prefix
	}
	sep := "/"
	if strings.HasPrefix(out.Prefix, src.Prefix+sep) {
		return strings.TrimPrefix(out.Prefix, src.Prefix+sep)
	}
	return ""
}

// ErrNoDocuments refuses a batch under Options.NoDocuments that would
// summarize documents: Task summarize, or Task auto over sources that hold
// documents and no image to caption.
var ErrNoDocuments = errors.New("documents cannot be summarized with this model; use --task caption for images only, or another model")

// CheckDocuments refuses (ErrNoDocuments), before a batch is created, one
// under o.NoDocuments that could only skip its documents: the refusal
// follows what the sources hold. Sources with images run (their documents,
// if any, are skipped with the reason); sources with neither run too (an
// empty batch). Without NoDocuments it lists nothing.
func (in *Ingester) CheckDocuments(ctx context.Context, o Options) error {
	if o.NoDocuments == "" {
		return nil
	}
	if o.Task == jobs.TaskSummarize {
		return fmt.Errorf("%s: %w", o.NoDocuments, ErrNoDocuments)
	}
	if o.Task == jobs.TaskCaption {
		return nil
	}
	var mu sync.Mutex
	docs, images := 0, 0
	errEnough := errors.New("an image: the batch can run")
	_, err := in.Scan(ctx, o, func(it Item) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case it.Kind == jobs.KindImage && (it.Skip == "" || it.Unchanged):
			images++
			return errEnough
		case it.Kind == jobs.KindDocument:
			docs++
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return err
	}
	if docs > 0 && images == 0 {
		return fmt.Errorf("%s: %w", o.NoDocuments, ErrNoDocuments)
	}
	return nil
}
