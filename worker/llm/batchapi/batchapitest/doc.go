// Package batchapitest holds two fakes for the batch layer
// (worker/llm/batchapi), for tests only: the llamapipe binary never links
// it (cmd/llamapipe/house_test.go checks).
//
//   - BatchServer, an OpenAI-style Batch API: POST /v1/files (multipart,
//     purpose "batch"; every line checked: JSON, unique custom_id, method
//     POST, url /v1/chat/completions, body with model and messages), GET
//     /v1/files/{id} and /v1/files/{id}/content, POST /v1/batches, GET
//     /v1/batches/{id}, POST /v1/batches/{id}/cancel. Batches move only when
//     the test says so (Advance, Expire, FailBatch); each line is answered
//     as the chat server answers it (400 for an invalid body, FailLine for
//     injected failures), into an output file and an error file.
//   - BedrockServer, the Bedrock control plane for batch inference: POST
//     /model-invocation-job, GET /model-invocation-job/{jobIdentifier}, POST
//     /model-invocation-job/{jobIdentifier}/stop (REST JSON as in the
//     Bedrock API reference; signatures are not checked). Input JSONL is
//     read from, and output records (<input>.out, manifest.json.out)
//     written to, a storage.Store standing in for S3.
//
// Neither logs request content.
package batchapitest
