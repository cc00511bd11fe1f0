// Package dashboard is the operators' web view of llamapipe: asynqmon
// (the Asynq dashboard) under /asynq, a batch page of our own at / and
// /batches/{id} (progress, counts, tokens, cost, rate, ETA, failures grouped
// by reason, where the manifest and report are, and charts drawn on the
// server as inline SVG by package chart from the batch's per-minute counts:
// charts.go), the results view
// (results.go, digest.go: /batches/{id}/results, a paged gallery of
// captions and list of digests; /doc, one digest with its quotes, their
// pages and whether they were found there; /image, a gallery thumbnail),
// /metrics, /healthz and /readyz.
//
// Everything but /healthz and /readyz requires credentials (HTTP basic auth
// or a bearer token, compared in constant time) unless the caller asks for
// anonymous access explicitly. Each login has a role (roles.go): admin,
// viewer (changes nothing) or tenant (sees only its tenant's batches).
// Pages are rendered on the server with
// html/template (no JavaScript of our own), so everything shown is escaped.
//
// The dashboard reads batch records through a small interface that
// *jobs.Tracker satisfies and queues through asynqmon; it never writes a
// batch record. /metrics, /healthz and /readyz are handlers it is given
// (cmd/llamapipe wires worker/metrics'): it must not import worker/... or
// ingest/..., and knows nothing of the task handlers, models or storage
// backends: the results view reads results (and image sources) through
// Config.Open, the storage interface cmd/llamapipe gives it, and shows
// what the results say (captions, digests and their quotes), escaped.
package dashboard
