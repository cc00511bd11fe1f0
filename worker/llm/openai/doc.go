// Package openai is the llm.Client for OpenAI-compatible chat completions
// (Meta's Llama API, Groq, Together, OpenRouter, Qianfan v2, resellers,
// vLLM, Ollama), built on the official openai-go SDK.
//
// It owns the request shape (system + user parts, images as base64 data
// URLs, max_completion_tokens, response_format) and turns every failure into
// a classified *llm.Error. It does not retry (the queue does), does not
// rate-limit (see package ratelimit) and knows nothing of jobs or storage.
package openai
