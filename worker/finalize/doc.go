// Package finalize ends a batch once every item is recorded: HandleFinalize
// streams the batch's manifest.jsonl and writes its report.md (Report,
// ReportWithTenant) under batches/<id>/ in its output, copies both to the
// output's root (the latest batch's), writes the batch's exports beside
// them (register.go: the contract register of its digests; catalog.go: the
// catalog of its captions, with a Shopify image CSV when the product
// sidecar has handles; export.go: the files, CSV for spreadsheets),
// starts the retention of the batch's
// Redis records (Config.Retention), marks the batch finalized and queues
// its completion webhook; HandleWebhook POSTs the signed event and records the delivery.
// The worker's mux registers both handlers; the worker's RetryDelayFunc
// uses WebhookRetryDelay for webhook tasks.
//
// It reads batch records through the few Tracker methods it declares, and
// writes no Redis key of its own. It reads results as written (the
// digest's and the caption's JSON fields, the quote checks through
// worker/evidence, the product sidecar through jobs/products), one at a
// time, but must not know models (a webhook's cost comes from the batch's
// counts, its currency from Config), and must not import the worker
// package, its stages, or ingest.
package finalize
