// Package metrics owns llamapipe's Prometheus metrics and the small HTTP
// endpoints that go with them: /metrics on a registry of our own (never the
// global one), /healthz (the process is up) and /readyz (Redis answers).
//
// Workers record what happened through *Metrics (items by kind and status,
// model request latency, tokens, cost and error classes, image preparation
// and text extraction times, rate-limit waits, retries); a nil *Metrics
// records nothing, so callers need no checks. The dashboard adds asynq's
// queue collector (github.com/hibiken/asynq/x/metrics) and a count of live
// workers on its own registry, so queue metrics are scraped once, not from
// every worker.
//
// Label values are bounded sets (kinds, statuses, providers, models, error
// classes, retry reasons): never a batch ID, a source key, document text or
// anything secret. The package knows worker/llm's error classes and, for the
// kind labels, the item kinds and file types of jobs (jobs.Kind,
// jobs.FileType); it knows nothing else of jobs, nor storage or the handlers.
package metrics
