// Package estimate is the per-item estimate behind `llamapipe plan` and the
// API's submit answer: how many model requests and tokens one listed item
// needs (PDF pages, a document's text chunked like the worker chunks it,
// image tiles at the size the worker sends), and what they cost under a
// model profile's prices. Its Estimator implements ingest.ItemEstimator;
// ingest lists, samples and sums (ingest.Ingester.Plan).
//
// An estimate runs inside the API server, so it is bounded: it reads at
// most Options.ReadLimit (DefaultReadLimit, 4 MiB) of an object with a
// range read, scales a larger text's tokens from that prefix by size and
// estimates a larger PDF or DOCX from its size without parsing it (the
// item is flagged Partial); reads stop with the context (ingest gives each
// item a time limit and runs them in a fixed pool).
//
// It sits next to the worker's request building and shares its rules with
// the worker (TextBudget, Password), so a plan and a run cannot disagree
// about how much text a request carries or which password opens a PDF.
//
// It must not enqueue or write anything, call a model, or know about flags,
// HTTP or Redis; it must not import the top-level worker package (which
// imports it) or anything under ingest/ but pdfsplit.
package estimate
