// Package pdftext extracts text from PDF pages and renders pages without a
// text layer, using PDFium compiled to WebAssembly (github.com/klippa-app/go-pdfium
// in webassembly mode, run by wazero: no cgo, no subprocess).
//
// It owns: the PDFium instance pool, the wazero compilation cache, opening a
// document (with or without a password), per-page text, page rendering, and
// classifying failures into permanent sentinels (ErrPassword, ErrDamaged,
// ErrTooManyPages) versus retryable ones (context cancellation/timeouts).
//
// It must not know about storage, queues, prompts, models or how pages are
// grouped into chunks (see worker/pdfsplit); it never logs document text.
package pdftext
