// Package providers builds the llm.Client a worker uses from configuration:
// it resolves the profile (built-in presets merged with a profiles YAML
// file), reads the API key from an environment variable or a file, creates
// the provider's client and, given Redis and limits, wraps it in the shared
// rate limiter.
//
// It is the only package that knows every provider. It never logs, and the
// key never appears in its errors.
package providers
