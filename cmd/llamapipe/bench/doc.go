// Package bench is the harness behind `llamapipe bench`: it generates a
// synthetic batch (JPEG photos, text and Markdown contracts), ingests it
// with no worker running, processes it with in-process workers against the
// built-in fake OpenAI-compatible server (worker/llm/fakeserver) or the
// offline provider, and reports throughput, latency, CPU and memory as a
// Markdown table. It also measures the enqueue rate and Redis memory per
// queued task, a nightly re-run over an unchanged catalog, Redis while a
// bounded batch is ingested (--measure bounded) and while one runs through
// workers with its finished records spilled and without (--measure spill,
// spill.go); --measure targets prints each row of issue 16's table beside its reference,
// measured in the same run (targets.go).
//
// bench composes ingest, worker and the fake model server, which only
// cmd/ may do; only cmd/llamapipe imports it. It reads no flags or
// environment: the CLI fills Options and Services.
package bench
