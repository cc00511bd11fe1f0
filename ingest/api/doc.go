// Package api is llamapipe's versioned HTTP JSON API (/v1): submit batches,
// list and follow them, page through their items, cancel and retry them.
// It owns request validation (which source and output locations a caller
// may name), bearer-token authentication bound to tenants, idempotent
// submits (Idempotency-Key, kept in Redis) and the OpenAPI document that
// describes it (openapi.yaml, embedded and served at /v1/openapi.yaml).
// A submit may name a completion webhook, accepted only under the
// configured URL prefixes (the workers call and sign it), and is answered
// with the batch's cost estimate (ingest.Ingester.Plan).
//
// Files: server.go (config, routes, errors), submit.go (submit, its
// validation and budget refusal), idempotency.go (Idempotency-Key),
// batches.go (list, detail, items, cancel, retry), auth.go, locations.go.
//
// It must not import worker/...: it knows no model. What it needs of model
// profiles (names, whether they take documents, batch API, the per-item
// estimator of worker/estimate) and how batches are cancelled come in
// Config as values and funcs. It must not know how stores are opened (it is
// given an ingest.Ingester) or how the process is configured (flags,
// environment: see cmd/llamapipe/serve.go).
package api
