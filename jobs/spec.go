package jobs

import (
	"fmt"
	"net/url"
	"regexp"

	"github.com/bmatcuk/doublestar/v4"
)

// DefaultMaxQueued is the CLI's, API's and schedules' MaxQueued (~85 MB of Redis).
const DefaultMaxQueued = 100_000

// Spec is one batch request: what to process, how, and where the results
// go. Every way of asking for a batch fills one — the CLI's flags, the
// API's submit, a schedules entry — and every record of one carries it:
// ingesttask.Payload (a scheduled ingest in the queue), Batch (the batch record
// in Redis) and ingest.Options. Validate is the one check of it.
//
// A Spec holds references and names only: no prompt text, no document, no secret. The prompt
// overrides a batch is made with are the workers' files (ingest.Options.Prompts); their versions
// go into the results' fingerprints, not into the Spec.
//
// Its JSON is the contract's (payloads and batch records): the worker options nested under
// "options". Its YAML (a schedules entry) is flat: language, products, max_output_tokens,
// model_mode and fallback beside the other fields. The API's submit body spells the fields it
// accepts flat too (api.SubmitRequest).
type Spec struct {
	// Sources are the locations (folders or s3://bucket/prefix) listed
	// recursively. Required.
	Sources []string `json:"sources" yaml:"sources"`
	// Out is the output location. Required.
	Out string `json:"out" yaml:"out"`
	// Task is auto (documents summarized, images captioned), summarize or
	// caption. Empty means auto.
	Task string `json:"task" yaml:"task"`
	// Queue is the asynq queue: critical, default or nightly. Empty means
	// default (a schedules entry: nightly, or default for a watch).
	Queue string `json:"queue" yaml:"queue"`
	// Options are what the workers need of each item: language, output
	// cap, product sidecar, model mode.
	Options `json:"options,omitzero" yaml:",inline"`
	// Include and Exclude are doublestar globs ("**/*.pdf") matched against
	// each key relative to its source; a glob without a slash also matches
	// the base name. An empty Include includes everything.
	Include []string `json:"include,omitempty" yaml:"include"`
	Exclude []string `json:"exclude,omitempty" yaml:"exclude"`
	// MaxSize skips objects larger than this many bytes. Zero means 512 MiB.
	MaxSize int64 `json:"max_size,omitempty" yaml:"max_size"`
	// MaxRetry is how often a failing item is retried. Zero means 5.
	MaxRetry int `json:"max_retry,omitempty" yaml:"max_retry"`
	// MaxQueued bounds the batch's items in the queue at once: past it,
	// ingest keeps the rest in pages in the batch's work area and they are
	// fed to the queue as items end (ingest.TopUp). Zero means no bound.
	MaxQueued int `json:"max_queued,omitempty" yaml:"max_queued"`
	// Force processes every item, also those whose results are current
	// (same source ETag, task, prompts, model and options as last time).
	Force bool `json:"force,omitempty" yaml:"force"`
	// TrustContent processes a file whose name lies about its content (a
	// .jpg holding text, a .pdf holding a JPEG) by its content. False: such
	// a file fails with a reason that says both.
	TrustContent bool `json:"trust_content,omitempty" yaml:"trust_content"`
	// Provider and Model name the model the batch is made for: its results'
	// fingerprints and the report. Empty: the workers'.
	Provider string `json:"provider,omitempty" yaml:"provider"`
	Model    string `json:"model,omitempty" yaml:"model"`
	// Tenant owns the batch: its budget and fair share, and API tokens see
	// only their tenant's batches. Empty: none.
	Tenant string `json:"tenant,omitempty" yaml:"tenant"`
	// Webhook is the http(s) URL told when the batch completes (the workers
	// sign the call; the URL carries no secret). Empty: none.
	Webhook string `json:"webhook,omitempty" yaml:"webhook"`
}

// SpecError is a Spec that Validate refused: callers answer it as a bad
// request (HTTP 400, exit status 2).
type SpecError struct {
	// Field is the refused field as JSON and YAML spell it ("model_mode").
	Field string
	// Msg says what is wrong with it and what to give instead.
	Msg string
	// Err is the underlying error, if any (ErrBadTenant for a tenant).
	Err error
}

func (e *SpecError) Error() string { return e.Msg }

func (e *SpecError) Unwrap() error { return e.Err }

func specErrorf(field, format string, args ...any) error {
	return &SpecError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// languageTag is what Options.Language may look like: en, de, pt-BR.
var languageTag = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)

// Validate checks a Spec as given, before defaults: empty optional fields
// are valid. Whether the model can do what it asks (summaries, the batch
// API) depends on the model and is the caller's to check. The error is a
// *SpecError naming the first bad field.
func (s Spec) Validate() error {
	if len(s.Sources) == 0 {
		return specErrorf("sources", "no sources: give at least one location")
	}
	if s.Out == "" {
		return specErrorf("out", "no output location (out)")
	}
	switch s.Task {
	case "", TaskAuto, TaskSummarize, TaskCaption:
	default:
		return specErrorf("task", "unknown task %q: use auto, summarize or caption", s.Task)
	}
	if s.MaxQueued < 0 {
		return specErrorf("max_queued", "max_queued %d: give a positive bound, or 0 for none", s.MaxQueued)
	}
	if s.Queue != "" && !ValidQueue(s.Queue) {
		return specErrorf("queue", "unknown queue %q: use critical, default or nightly", s.Queue)
	}
	if !ValidModelMode(s.ModelMode) {
		return specErrorf("model_mode", "unknown model_mode %q: use online, batch or auto", s.ModelMode)
	}
	if s.Language != "" && !languageTag.MatchString(s.Language) {
		return specErrorf("language", "language %q: use a language tag such as en, de or pt-BR", s.Language)
	}
	if s.Tenant != "" {
		if err := ValidTenant(s.Tenant); err != nil {
			return &SpecError{Field: "tenant", Msg: err.Error(), Err: err}
		}
	}
	if s.Webhook != "" {
		// The URL is not quoted back: it may carry credentials.
		if u, err := url.Parse(s.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return specErrorf("webhook", "the webhook is not an absolute http:// or https:// URL")
		}
	}
	for _, f := range []struct {
		name  string
		globs []string
	}{{"include", s.Include}, {"exclude", s.Exclude}} {
		for _, g := range f.globs {
			if !doublestar.ValidatePattern(g) {
				return specErrorf(f.name, "bad glob %q in %s", g, f.name)
			}
		}
	}
	return nil
}
