// Package prompts owns the prompt templates and JSON schemas llamapipe sends
// to the model, and the checks on the model's answers.
//
// Templates are embedded with go:embed (templates/*.tmpl, schemas/*.json).
// Each has a Version such as "caption/1" that workers record in every result,
// so a result can always be traced to the exact prompt that produced it.
// Bump the number whenever a template's wording or schema changes.
//
// # Template file format
//
// Embedded templates and override files (LoadFile) share one format: a YAML
// front-matter header between two "---" lines, then a "=== system ===" and a
// "=== user ===" section, each marker alone on its line:
//
//	---
//	name: caption            # required
//	version: caption/1-acme  # required, recorded in results
//	schema_name: caption     # optional: name of the answer's JSON schema
//	schema_file: my.json     # optional: schema path, relative to this file
//	description: ...         # optional
//	---
//	=== system ===
//	You describe product photos ...
//	=== user ===
//	Write in language {{required "Language" .Language}}. ...
//
// When schema_name is set and schema_file is not, the embedded schema of that
// name is used (so an override may reword a prompt and keep our schema). With
// neither, the template has no schema and the model answers in plain text.
// The system section is sent as is; the user section is a text/template
// (missingkey=error) rendered by Template.Render. Template functions:
// required NAME VALUE (fails when VALUE is empty) and join LIST SEP.
//
// # Documents are data, not instructions
//
// Templates render instructions only. Document text (and anything derived
// from it, such as the partial results fed to summary_reduce) never goes
// through a template: the worker sends it as a separate llm.Part with
// Document=true, after the rendered instruction part. The system prompts
// tell the model that such content is data to be summarised, never
// instructions to follow, so a contract saying "ignore previous
// instructions" is summarised, not obeyed. The offline provider summarises
// exactly the Document=true parts.
//
// # Page markers
//
// Document text carries page numbers as a marker at the start of each page:
// PageMarker(3) == "[page 3]" (PageMarkerFormat), 1-based, on its own line.
// The summary_map prompt tells the model to cite pages from these markers,
// and SplitPages splits text back into pages. Workers that extract PDF text
// must insert the markers with PageMarker so the model, the offline
// provider and the citations agree.
//
// This package knows nothing about providers, queues, storage or jobs.
package prompts
