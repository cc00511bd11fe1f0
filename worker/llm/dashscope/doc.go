// Package dashscope is the llm.Client for Alibaba DashScope's native
// multimodal generation API (the Llama 3.2 vision models), following
// shared/reference/providers/dashscope-llama-vision-multimodal-api.zh.txt.
//
// It owns that API's request and answer shapes and classifies its errors
// into *llm.Error. It does not retry, rate-limit, or know about jobs.
package dashscope
