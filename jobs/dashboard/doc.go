// Package dashboard is the operators' web view of llamapipe: asynqmon
// (the Asynq dashboard) under /asynq, a batch page of our own at / and
// /batches/{id} (progress, counts, tokens, cost, rate, ETA, failures grouped
// by reason, where the manifest and report are), /metrics, /healthz and
// /readyz.
//
// Everything but /healthz and /readyz requires credentials (HTTP basic auth
// or a bearer token, compared in constant time) unless the caller asks for
// anonymous access explicitly. Pages are rendered on the server with
// html/template (no JavaScript of our own), so everything shown is escaped.
//
// The dashboard reads batch records through a small interface that
// *jobs.Tracker satisfies and queues through asynqmon; it never writes a
// batch record. /metrics, /healthz and /readyz are handlers it is given
// (cmd/llamapipe wires worker/metrics'): it must not import worker/... or
// ingest/..., knows nothing of the task handlers, models or storage
// backends, and shows no document text (payloads hold references only).
package dashboard
