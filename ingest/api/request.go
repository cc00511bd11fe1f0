package api

import (
	"bytes"
	"encoding/json"

	"github.com/llamapipe/llamapipe/jobs"
)

// SubmitRequest is the body of POST /v1/batches: the batch asked for, as a
// client may ask for it. A client sets the Spec's sources, out, task,
// queue, language, include, exclude, force, webhook, model_mode,
// trust_content, max_queued (at most the server's bound) and fallback; the
// rest is the server's (the tenant is the token's; provider, model and
// limits are Config.Defaults), and a body that names it is refused as an
// unknown field.
type SubmitRequest struct {
	jobs.Spec
	// Profile names the model profile the submit's estimate is priced
	// with. Empty: the server's. It prices the answer, not the batch (the
	// workers' model processes it), so it is not part of the Spec.
	Profile string
}

// submitBody is SubmitRequest on the wire (openapi.yaml): the fields a
// client sets, with the worker options flat, in the order the API always
// wrote them (the Idempotency-Key records compare requests byte by byte).
type submitBody struct {
	Sources   []string `json:"sources"`
	Out       string   `json:"out"`
	Task      string   `json:"task,omitempty"`
	Queue     string   `json:"queue,omitempty"`
	Language  string   `json:"language,omitempty"`
	Include   []string `json:"include,omitempty"`
	Exclude   []string `json:"exclude,omitempty"`
	Force     bool     `json:"force,omitempty"`
	Webhook   string   `json:"webhook,omitempty"`
	Profile   string   `json:"profile,omitempty"`
	ModelMode string   `json:"model_mode,omitempty"`
	KeepText  bool     `json:"keep_text,omitempty"`
	// TrustContent is last so that older bodies marshal as before.
	TrustContent bool `json:"trust_content,omitempty"`
	// MaxQueued is after it for the same reason.
	MaxQueued int `json:"max_queued,omitempty"`
	// Fallback comes after it for the same reason.
	Fallback []string `json:"fallback,omitempty"`
}

// MarshalJSON writes the request as a client sends it.
func (r SubmitRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(submitBody{Sources: r.Sources, Out: r.Out, Task: r.Task, Queue: r.Queue, Language: r.Language,
		Include: r.Include, Exclude: r.Exclude, Force: r.Force, Webhook: r.Webhook, Profile: r.Profile, ModelMode: r.ModelMode,
		KeepText: r.KeepText, TrustContent: r.TrustContent, MaxQueued: r.MaxQueued, Fallback: r.Fallback})
}

// UnmarshalJSON reads a request body; a field a client may not set is an
// unknown field.
func (r *SubmitRequest) UnmarshalJSON(b []byte) error {
	var w submitBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*r = SubmitRequest{Profile: w.Profile, Spec: jobs.Spec{Sources: w.Sources, Out: w.Out, Task: w.Task, Queue: w.Queue,
		Include: w.Include, Exclude: w.Exclude, Force: w.Force, Webhook: w.Webhook, TrustContent: w.TrustContent, MaxQueued: w.MaxQueued,
		Options: jobs.Options{Language: w.Language, ModelMode: w.ModelMode, KeepText: w.KeepText, Fallback: w.Fallback}}}
	return nil
}
