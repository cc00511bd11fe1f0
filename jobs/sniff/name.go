package sniff

import (
	"path"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
)

// nameKinds are the extensions that claim a kind: an image name on
// document content, or a document name on image content, is a name that
// lies (see Mismatch).
var nameKinds = map[string]jobs.Kind{
	".jpg": jobs.KindImage, ".jpeg": jobs.KindImage, ".jpe": jobs.KindImage, ".jfif": jobs.KindImage,
	".png": jobs.KindImage, ".gif": jobs.KindImage, ".webp": jobs.KindImage, ".bmp": jobs.KindImage,
	".tif": jobs.KindImage, ".tiff": jobs.KindImage, ".heic": jobs.KindImage, ".heif": jobs.KindImage,
	".avif": jobs.KindImage, ".svg": jobs.KindImage,
	".pdf": jobs.KindDocument, ".docx": jobs.KindDocument, ".txt": jobs.KindDocument,
	".md": jobs.KindDocument, ".markdown": jobs.KindDocument, ".html": jobs.KindDocument, ".htm": jobs.KindDocument,
	".xlsx": jobs.KindDocument, ".pptx": jobs.KindDocument, ".odt": jobs.KindDocument, ".rtf": jobs.KindDocument,
}

// NameKind is the kind a file name claims by its extension (KindImage for
// .jpg, .png, .heic, …; KindDocument for .pdf, .docx, .txt, .md, .html),
// or "" when the extension claims none.
func NameKind(name string) jobs.Kind {
	return nameKinds[strings.ToLower(path.Ext(name))]
}

// Mismatch reports a name that lies about its content: a name claiming an
// image on content that is not one, or a name claiming a document on image
// content. The message says both, e.g. "named .jpg but holds plain text";
// "" means the name and the content agree (or the name claims nothing).
func Mismatch(name string, t jobs.FileType) string {
	claim := NameKind(name)
	if claim == "" || claim == t.Kind() {
		return ""
	}
	if claim == jobs.KindDocument && t.Kind() != jobs.KindImage {
		return "" // a document name on other content: the type decides
	}
	return "named " + strings.ToLower(path.Ext(name)) + " but holds " + Describe(t)
}

// Describe says in words what content of type t is: "plain text", "a PDF
// document", "a JPEG image", "unrecognised binary content".
func Describe(t jobs.FileType) string {
	switch t {
	case jobs.FileTXT:
		return "plain text"
	case jobs.FileMarkdown:
		return "Markdown text"
	case jobs.FileHTML:
		return "an HTML page"
	case jobs.FilePDF:
		return "a PDF document"
	case jobs.FileDOCX:
		return "a Word (DOCX) document"
	case jobs.FileZip:
		return "a zip archive"
	case jobs.FileXLSX, jobs.FilePPTX, jobs.FileODT, jobs.FileRTF:
		return "a " + strings.ToUpper(string(t)) + " document"
	case jobs.FileEML:
		return "an email message"
	case jobs.FileMSG, jobs.FileDOC, jobs.FileXLS, jobs.FilePPT, jobs.FileOLE:
		return "an OLE (Outlook or legacy Office) file"
	case jobs.FileSVG:
		return "an SVG image"
	case "", jobs.FileUnknown:
		return "unrecognised binary content"
	}
	if t.Kind() == jobs.KindImage {
		return "a " + strings.ToUpper(string(t)) + " image"
	}
	return string(t) + " content"
}
