// Package llmtest holds helpers for the provider tests: small generated
// images, data-URL checks and error-kind assertions. Test code only; it
// knows nothing of any provider's protocol.
package llmtest
