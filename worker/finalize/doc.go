// Package finalize ends a batch once every item is recorded: HandleFinalize
// streams the batch's manifest.jsonl and writes its report.md (Report,
// ReportWithTenant) under batches/<id>/ in its output, copies both to the
// output's root (the latest batch's), starts the retention of the batch's
// Redis records (Config.Retention), marks the batch finalized and queues
// its completion webhook; HandleWebhook POSTs the signed event and records the delivery.
// The worker's mux registers both handlers; the worker's RetryDelayFunc
// uses WebhookRetryDelay for webhook tasks.
//
// It reads batch records through the few Tracker methods it declares, and
// writes no Redis key of its own. It must not know documents, images or
// models (a webhook's cost comes from the batch's counts, its currency
// from Config), and must not import the worker package, its stages, or
// ingest.
package finalize
