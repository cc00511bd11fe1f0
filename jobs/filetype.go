package jobs

// FileType is an input object's content type as jobs/sniff detects it. Its
// string values are what payloads and manifest entries carry ("pdf",
// "jpeg", ...).
type FileType string

// File types. Every value sniff.Sniff can return is listed here.
const (
	FilePDF      FileType = "pdf"
	FileDOCX     FileType = "docx"
	FileTXT      FileType = "txt"
	FileMarkdown FileType = "md"
	FileHTML     FileType = "html"
	FileJPEG     FileType = "jpeg"
	FilePNG      FileType = "png"
	FileGIF      FileType = "gif"
	FileWebP     FileType = "webp"
	FileBMP      FileType = "bmp"
	FileTIFF     FileType = "tiff"
	FileHEIC     FileType = "heic"
	FileAVIF     FileType = "avif"
	FileSVG      FileType = "svg"
	// Office documents: Excel, PowerPoint (OOXML), OpenDocument text, RTF.
	FileXLSX FileType = "xlsx"
	FilePPTX FileType = "pptx"
	FileODT  FileType = "odt"
	FileRTF  FileType = "rtf"
	// FileEML is an RFC 5322 / MIME email message.
	FileEML FileType = "eml"
	// FileOLE is an OLE compound file: Outlook .msg and legacy Office
	// .doc/.xls/.ppt, told apart by name (FileMSG, FileDOC, FileXLS, FilePPT).
	FileOLE FileType = "ole"
	FileMSG FileType = "msg"
	FileDOC FileType = "doc"
	FileXLS FileType = "xls"
	FilePPT FileType = "ppt"
	// FileZip is a zip archive that is not an office document.
	FileZip FileType = "zip"
	// FileUnknown is content no rule recognises (binary, or empty).
	FileUnknown FileType = "unknown"
)

// Kind is what an item is to the pipeline: a document is summarized, an
// image captioned, anything else skipped.
type Kind string

// Kinds of input item.
const (
	KindDocument Kind = "document"
	KindImage    Kind = "image"
	KindOther    Kind = "other"
)

// Kind reports KindDocument for pdf, docx, txt, md, html and eml, KindImage for
// jpeg, png, gif, webp, bmp, tiff, heic, avif and svg, and KindOther for
// anything else (zip, unknown, "").
func (t FileType) Kind() Kind {
	switch t {
	case FilePDF, FileDOCX, FileTXT, FileMarkdown, FileHTML, FileEML, FileXLSX, FilePPTX, FileODT, FileRTF:
		return KindDocument
	case FileJPEG, FilePNG, FileGIF, FileWebP, FileBMP, FileTIFF, FileHEIC, FileAVIF, FileSVG:
		return KindImage
	}
	return KindOther
}
