package extract

import (
	"errors"
	"fmt"

	"github.com/llamapipe/llamapipe/jobs"
)

// ErrNotText marks a document type that is not extracted here: PDFs
// (worker/pdftext) and types that are not documents at all.
var ErrNotText = errors.New("not a text document type")

// Document extracts the text of a document by its sniffed type: DOCX,
// HTML, and plain text or Markdown. It is the one switch on document type
// that the worker's document stage and the estimate (worker/estimate)
// both use, so the plan and the run read a document the same way. A PDF or
// any other type is ErrNotText.
func Document(t jobs.FileType, data []byte, lim Limits) (string, error) {
	switch t {
	case jobs.FileDOCX:
		return DOCX(data, lim)
	case jobs.FileHTML:
		return HTML(data)
	case jobs.FileTXT, jobs.FileMarkdown:
		return Text(data)
	case jobs.FileEML:
		return Mail(data)
	case jobs.FileXLSX:
		return XLSX(data, lim)
	case jobs.FilePPTX:
		return PPTX(data, lim)
	case jobs.FileODT:
		return ODT(data, lim)
	case jobs.FileRTF:
		return RTF(data, lim)
	}
	return "", fmt.Errorf("%w: %q", ErrNotText, t)
}
