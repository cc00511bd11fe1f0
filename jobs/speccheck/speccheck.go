// Package speccheck checks a batch's request (jobs.Spec) as given, before
// defaults, for the CLI, the API and ingest alike.
package speccheck

import (
	"fmt"
	"net/url"
	"regexp"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/llamapipe/llamapipe/jobs"
)

// Error is a jobs.Spec that Validate refused: callers answer it as a bad
// request (HTTP 400, exit status 2).
type Error struct {
	// Field is the refused field as JSON and YAML spell it ("model_mode").
	Field string
	// Msg says what is wrong with it and what to give instead.
	Msg string
	// Err is the underlying error, if any (ErrBadTenant for a tenant).
	Err error
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error { return e.Err }

func errorf(field, format string, args ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// languageTag is what Options.Language may look like: en, de, pt-BR.
var languageTag = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)

// Validate checks a jobs.Spec as given, before defaults: empty optional fields
// are valid. Whether the model can do what it asks (summaries, the batch
// API) depends on the model and is the caller's to check. The error is a
// *Error naming the first bad field.
func Validate(s jobs.Spec) error {
	if len(s.Sources) == 0 {
		return errorf("sources", "no sources: give at least one location")
	}
	if s.Out == "" {
		return errorf("out", "no output location (out)")
	}
	switch s.Task {
	case "", jobs.TaskAuto, jobs.TaskSummarize, jobs.TaskCaption:
	default:
		return errorf("task", "unknown task %q: use auto, summarize or caption", s.Task)
	}
	if s.MaxQueued < 0 {
		return errorf("max_queued", "max_queued %d: give a positive bound, or 0 for none", s.MaxQueued)
	}
	if s.Queue != "" && !jobs.ValidQueue(s.Queue) {
		return errorf("queue", "unknown queue %q: use critical, default or nightly", s.Queue)
	}
	if !jobs.ValidModelMode(s.ModelMode) {
		return errorf("model_mode", "unknown model_mode %q: use online, batch or auto", s.ModelMode)
	}
	if s.Language != "" && !languageTag.MatchString(s.Language) {
		return errorf("language", "language %q: use a language tag such as en, de or pt-BR", s.Language)
	}
	if s.Tenant != "" {
		if err := jobs.ValidTenant(s.Tenant); err != nil {
			return &Error{Field: "tenant", Msg: err.Error(), Err: err}
		}
	}
	if s.Webhook != "" {
		// The URL is not quoted back: it may carry credentials.
		if u, err := url.Parse(s.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errorf("webhook", "the webhook is not an absolute http:// or https:// URL")
		}
	}
	for _, f := range []struct {
		name  string
		globs []string
	}{{"include", s.Include}, {"exclude", s.Exclude}} {
		for _, g := range f.globs {
			if !doublestar.ValidatePattern(g) {
				return errorf(f.name, "bad glob %q in %s", g, f.name)
			}
		}
	}
	return nil
}
