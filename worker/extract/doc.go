// Package extract turns document bytes into plain UTF-8 text: plain text
// and Markdown in any common encoding (Text), the visible text of HTML
// pages (HTML) and the paragraphs and tables of Word documents (DOCX).
//
// It owns: encoding detection and conversion, HTML visible-text rules, the
// OOXML walk and its zip-bomb limits, and the permanent error sentinels
// (ErrUnsupportedEncoding, ErrTooLarge, ErrCorrupt) that tell a bad input
// from a retryable failure. Every error it returns wraps one of them: there
// is no I/O here, so nothing it returns is worth retrying.
//
// Document is the one switch on document type (jobs.FileType) that the
// worker's document stage and the estimate share.
//
// It must not know about storage, queues, PDFs (see worker/pdftext), how
// text is chunked (see worker/chunk), prompts or models; it never logs, and
// error messages never contain document text.
package extract
