// Package bedrock is the llm.Client for AWS Bedrock's Converse API with the
// Llama 4 models (cross-region inference profiles such as
// us.meta.llama4-scout-17b-instruct-v1:0), built on aws-sdk-go-v2.
//
// It owns the Converse request shape (system blocks, text and image byte
// blocks, inference config) and maps AWS error codes onto *llm.Error kinds.
// Credentials come from the AWS default chain unless given. It does not
// retry (the SDK's retryer is disabled: the queue retries), rate-limit, or
// know about jobs.
package bedrock
