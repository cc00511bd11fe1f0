package jobs

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
