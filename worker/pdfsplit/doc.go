// Package pdfsplit inspects PDFs (page count, encryption) and splits them
// into page-range chunks with pdfcpu (relaxed validation), so that long
// contracts can be processed in pieces that fit a model's context.
//
// It owns: reading a PDF's structure with pdfcpu, grouping pages into ranges
// under a token budget (Plan), and writing one unencrypted chunk PDF per
// range (Split). When pdfcpu cannot read or split a file (ErrSplit), callers
// read the page range from the original with worker/pdftext instead.
//
// It must not know about text extraction, storage, queues or models. It
// never logs. pdfcpu's per-user config directory is disabled on first use
// (api.DisableConfigDir) so that no config file is written to $HOME.
package pdfsplit
