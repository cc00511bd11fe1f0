package llm

import (
	"errors"
	"strings"

	"github.com/llamapipe/llamapipe/worker/llm/jsonx"
)

// JSONInstruction is the system-prompt addition that asks a model without
// (or with only loose) structured output for one JSON object following s.
func JSONInstruction(s *Schema) string {
	if s == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("Answer with exactly one JSON object and nothing else: no prose, no Markdown fences.")
	if len(s.JSON) > 0 {
		b.WriteString(" The object must follow this JSON schema:\n")
		b.Write(s.JSON)
	}
	return b.String()
}

// WithInstruction returns system with the JSON instruction for s appended.
func WithInstruction(system string, s *Schema) string {
	in := JSONInstruction(s)
	switch {
	case in == "":
		return system
	case system == "":
		return in
	default:
		return system + "\n\n" + in
	}
}

// ErrInvalidJSON marks an answer that should have been JSON but held no
// JSON object (also after repair). It is wrapped in a Permanent *Error.
var ErrInvalidJSON = errors.New("answer is not a JSON object")

// ExtractJSONAnswer, when req asks for a schema, replaces resp.Text by the
// JSON object found in it (fences stripped, trailing commas repaired). When
// none is found it leaves resp.Text as it was and returns a Permanent
// *Error with code "invalid_json" whose text does not quote the answer.
func ExtractJSONAnswer(provider string, req Request, resp *Response) error {
	if req.Schema == nil {
		return nil
	}
	obj, err := jsonx.Extract(resp.Text)
	if err != nil {
		msg := "answer holds no JSON object"
		if resp.FinishReason == "length" || resp.FinishReason == "max_tokens" {
			msg += " (cut off at the output token limit)"
		}
		return &Error{Provider: provider, Kind: Permanent, Code: "invalid_json", Message: msg, Err: ErrInvalidJSON}
	}
	resp.Text = string(obj)
	return nil
}
