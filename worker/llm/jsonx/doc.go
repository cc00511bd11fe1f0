// Package jsonx pulls one JSON object out of a model's free-text answer:
// it strips Markdown code fences, finds the first balanced object and
// repairs trailing commas.
//
// It knows nothing about providers, schemas or what the object means.
package jsonx
