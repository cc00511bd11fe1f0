// Package fakeserver is an OpenAI-compatible chat-completions server for
// tests and benchmarks: POST /v1/chat/completions (and /chat/completions)
// with configurable latency, jitter and injected faults (429 with
// Retry-After, 500, hangs, garbage bodies), an optional API key, and
// answers that are valid for the JSON schema the request asks for.
//
// It validates requests the way a real provider does (JSON body, model set,
// messages non-empty, known roles, image parts as data URLs that decode)
// and answers 400 with an OpenAI-style error otherwise. The answer follows
// response_format json_schema when given; otherwise the schema is looked for
// in the system prompt (where clients without structured output put it),
// and failing that a contract_digest (package prompts) is answered. Usage is
// realistic: prompt tokens ≈ characters/4 plus image tiles, completion
// tokens ≈ answer characters/4.
//
// It is a net/http Handler: use it with httptest or on any listener. It
// knows nothing about the llm clients, jobs, storage or queues, and never
// logs request content.
package fakeserver
