package prompts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// ErrInvalidAnswer marks a model answer that is not JSON or does not follow
// its schema. Callers may retry the call once; it is not a provider error.
var ErrInvalidAnswer = errors.New("answer does not match schema")

// ErrBadSchema marks a schema that is not valid JSON schema (a bug in a
// template or an override file, never in the model's answer).
var ErrBadSchema = errors.New("invalid JSON schema")

// Validator checks documents against one compiled JSON schema (draft 2020-12
// unless the schema says otherwise). It is safe for concurrent use.
type Validator struct {
	schema *jsonschema.Schema
}

// noLoader refuses every external $ref: schemas must be self-contained, and
// validation must never touch the file system or the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external schema reference %q is not allowed", url)
}

// Compile compiles a JSON schema. Errors wrap ErrBadSchema.
func Compile(schema json.RawMessage) (*Validator, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSchema, err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	const url = "mem:///schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSchema, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSchema, err)
	}
	return &Validator{schema: s}, nil
}

// Validate checks one JSON document. Errors wrap ErrInvalidAnswer and name
// the failing locations and keywords, never the document's values.
func (v *Validator) Validate(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var inst any
	if err := dec.Decode(&inst); err != nil {
		return fmt.Errorf("%w: not JSON: %v", ErrInvalidAnswer, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: not JSON: data after the top-level value", ErrInvalidAnswer)
	}
	if err := v.schema.Validate(inst); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidAnswer, describe(err))
	}
	return nil
}

// describe flattens a validation error to "location: keyword problem" lines
// without quoting the instance.
func describe(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/"
			if len(e.InstanceLocation) > 0 {
				loc = ""
				for _, p := range e.InstanceLocation {
					loc += "/" + p
				}
			}
			out = append(out, loc+": "+kindText(e))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	s := ""
	for i, o := range out {
		if i > 0 {
			s += "; "
		}
		s += o
	}
	return s
}

// Validate checks doc against schema in one call. For repeated checks
// against the same schema use Compile (or Template.Validate). Errors wrap
// ErrBadSchema or ErrInvalidAnswer.
func Validate(schema json.RawMessage, doc []byte) error {
	v, err := Compile(schema)
	if err != nil {
		return err
	}
	return v.Validate(doc)
}

// kindText is the error text of one failing keyword, with the few kinds that
// quote the instance's value replaced by a value-free message.
func kindText(e *jsonschema.ValidationError) string {
	switch k := e.ErrorKind.(type) {
	case *kind.Format:
		return "not a valid " + k.Want
	case *kind.Pattern:
		return "does not match pattern " + k.Want
	case *kind.PropertyNames:
		return "invalid property name"
	}
	return e.ErrorKind.LocalizedString(message.NewPrinter(language.English))
}
