package prompts

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"text/template"

	"go.yaml.in/yaml/v3"
)

//go:embed templates/*.tmpl schemas/*.json
var embedded embed.FS

// Names of the embedded templates.
const (
	Caption       = "caption"
	Summary       = "summary"
	SummaryMap    = "summary_map"
	SummaryReduce = "summary_reduce"
	// Correspondence is the email message's template (file type eml): a
	// correspondence digest instead of a contract digest.
	Correspondence = "correspondence"
)

// Names of the embedded schemas (Template.SchemaName and llm.Schema.Name).
const (
	SchemaCaption        = "caption"
	SchemaContractDigest = "contract_digest"
	SchemaChunkFacts     = "chunk_facts"
	// SchemaCorrespondenceDigest is an email message's digest.
	SchemaCorrespondenceDigest = "correspondence_digest"
)

// CorrespondenceSchemaVersion is the version of the correspondence_digest
// schema (schemas/correspondence_digest.json says it in its description).
const CorrespondenceSchemaVersion = "correspondence_digest/1"

// DigestSchemaVersion is the version of the contract_digest schema
// (schemas/contract_digest.json says it in its description). Version 2:
// every field that states a fact is an object with its verbatim quote and
// pages (version 1 had plain strings and quoted only risky clauses).
const DigestSchemaVersion = "contract_digest/2"

// ErrNotFound is returned by Load and SchemaJSON for an unknown name.
var ErrNotFound = errors.New("not found")

// Template is one prompt: a static system prompt, a user prompt template and
// the JSON schema of the answer. A loaded Template is immutable and safe for
// concurrent use.
type Template struct {
	// Name is the template name, e.g. "caption".
	Name string
	// Version identifies the exact wording, e.g. "caption/1"; record it with
	// every result.
	Version string
	// Description is free text from the header (may be empty).
	Description string
	// Source is "embedded:<name>" or the file path the template came from.
	Source string
	// System is the system prompt, sent as is.
	System string
	// User is the unrendered user prompt template (text/template syntax).
	User string
	// Schema is the JSON schema of the answer; nil when the answer is text.
	Schema json.RawMessage
	// SchemaName names Schema (e.g. "caption"); empty when Schema is nil.
	SchemaName string

	tmpl      *template.Template
	validator *Validator
}

// header is the YAML front matter of a template file.
type header struct {
	Name        string `yaml:"name"`
	Version     string `yaml:"version"`
	SchemaName  string `yaml:"schema_name"`
	SchemaFile  string `yaml:"schema_file"`
	Description string `yaml:"description"`
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9_]*$`)

// Names lists the embedded templates, sorted.
func Names() []string {
	entries, err := fs.ReadDir(embedded, "templates")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".tmpl"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// loaded caches parsed embedded templates: they are immutable, and parsing
// compiles the schema, which is too costly to repeat for every item.
var loaded sync.Map // name → *Template

// Load returns the embedded template called name (see the Caption, Summary,
// SummaryMap and SummaryReduce constants).
func Load(name string) (*Template, error) {
	if t, ok := loaded.Load(name); ok {
		return t.(*Template), nil
	}
	t, err := load(name)
	if err != nil {
		return nil, err
	}
	loaded.Store(name, t)
	return t, nil
}

func load(name string) (*Template, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("prompt template %q: %w", name, ErrNotFound)
	}
	data, err := embedded.ReadFile("templates/" + name + ".tmpl")
	if err != nil {
		return nil, fmt.Errorf("prompt template %q: %w", name, ErrNotFound)
	}
	t, err := parse(data, "embedded:"+name, func(file string) ([]byte, error) {
		return nil, errors.New("schema_file is not allowed in embedded templates")
	})
	if err != nil {
		return nil, err
	}
	if t.Name != name {
		return nil, fmt.Errorf("prompt template %q: header says name %q", name, t.Name)
	}
	return t, nil
}

// LoadFile reads a template file in the format described in the package
// documentation; it overrides an embedded template of the same name.
func LoadFile(file string) (*Template, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read prompt template: %w", err)
	}
	dir := filepath.Dir(file)
	return parse(data, file, func(schemaFile string) ([]byte, error) {
		if !filepath.IsAbs(schemaFile) {
			schemaFile = filepath.Join(dir, schemaFile)
		}
		return os.ReadFile(schemaFile)
	})
}

// SchemaJSON returns the embedded schema called name (see the Schema*
// constants).
func SchemaJSON(name string) (json.RawMessage, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("schema %q: %w", name, ErrNotFound)
	}
	data, err := embedded.ReadFile(path.Join("schemas", name+".json"))
	if err != nil {
		return nil, fmt.Errorf("schema %q: %w", name, ErrNotFound)
	}
	return json.RawMessage(data), nil
}

const (
	systemMarker = "=== system ==="
	userMarker   = "=== user ==="
)

func parse(data []byte, source string, readSchema func(string) ([]byte, error)) (*Template, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("prompt template %s: %s", source, fmt.Sprintf(format, args...))
	}
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	rest, ok := strings.CutPrefix(text, "---\n")
	if !ok {
		return nil, fail(`must start with a "---" line (YAML front matter)`)
	}
	head, body, ok := strings.Cut(rest, "\n---\n")
	if !ok {
		return nil, fail(`front matter is not closed by a "---" line`)
	}
	var h header
	dec := yaml.NewDecoder(strings.NewReader(head))
	dec.KnownFields(true)
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("prompt template %s: header: %w", source, err)
	}
	if !validName.MatchString(h.Name) {
		return nil, fail("header: name %q must be lower-case letters, digits and _", h.Name)
	}
	if strings.TrimSpace(h.Version) == "" {
		return nil, fail("header: version is required")
	}

	sections := map[string]string{}
	current := ""
	var buf []string
	flush := func() {
		if current != "" {
			sections[current] = strings.Trim(strings.Join(buf, "\n"), "\n")
		}
		buf = buf[:0]
	}
	for _, line := range strings.Split(body, "\n") {
		var next string
		switch strings.TrimRight(line, " \t") {
		case systemMarker:
			next = "system"
		case userMarker:
			next = "user"
		}
		if next == "" {
			if current == "" && strings.TrimSpace(line) != "" {
				return nil, fail("text before the first %q or %q line", systemMarker, userMarker)
			}
			buf = append(buf, line)
			continue
		}
		if _, dup := sections[next]; dup || next == current {
			return nil, fail("section %q appears twice", next)
		}
		flush()
		current = next
	}
	flush()
	if strings.TrimSpace(sections["user"]) == "" {
		return nil, fail("the user section is missing or empty")
	}

	t := &Template{
		Name:        h.Name,
		Version:     strings.TrimSpace(h.Version),
		Description: h.Description,
		Source:      source,
		System:      sections["system"],
		User:        sections["user"],
		SchemaName:  h.SchemaName,
	}
	tmpl, err := template.New(h.Name).Option("missingkey=error").Funcs(funcs).Parse(t.User)
	if err != nil {
		return nil, fmt.Errorf("prompt template %s: user section: %w", source, err)
	}
	t.tmpl = tmpl

	switch {
	case h.SchemaFile != "":
		raw, err := readSchema(h.SchemaFile)
		if err != nil {
			return nil, fmt.Errorf("prompt template %s: schema_file: %w", source, err)
		}
		t.Schema = json.RawMessage(raw)
		if t.SchemaName == "" {
			t.SchemaName = strings.TrimSuffix(filepath.Base(h.SchemaFile), filepath.Ext(h.SchemaFile))
		}
	case h.SchemaName != "":
		raw, err := SchemaJSON(h.SchemaName)
		if err != nil {
			return nil, fmt.Errorf("prompt template %s: schema_name: %w", source, err)
		}
		t.Schema = raw
	}
	if t.Schema != nil {
		v, err := Compile(t.Schema)
		if err != nil {
			return nil, fmt.Errorf("prompt template %s: %w", source, err)
		}
		t.validator = v
		// Keep the schema compact: it is sent with every request.
		var compact bytes.Buffer
		if err := json.Compact(&compact, t.Schema); err == nil {
			t.Schema = json.RawMessage(compact.Bytes())
		}
	}
	return t, nil
}

var funcs = template.FuncMap{
	"required": func(name string, v any) (any, error) {
		if v == nil {
			return nil, fmt.Errorf("%s is required", name)
		}
		rv := reflect.ValueOf(v)
		if rv.IsZero() || ((rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map) && rv.Len() == 0) {
			return nil, fmt.Errorf("%s is required", name)
		}
		return v, nil
	},
	"join": func(list []string, sep string) string { return strings.Join(list, sep) },
}

// Render executes the user template with data (a struct such as CaptionData,
// or a map) and returns the user prompt. Missing keys and missing required
// values are errors.
func (t *Template) Render(data any) (string, error) {
	var b strings.Builder
	if err := t.tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render prompt %s: %w", t.Version, err)
	}
	return strings.TrimSpace(b.String()), nil
}

// Validate checks a model answer against the template's schema. It returns
// nil when the template has no schema.
func (t *Template) Validate(answer []byte) error {
	if t.validator == nil {
		return nil
	}
	if err := t.validator.Validate(answer); err != nil {
		return fmt.Errorf("%s answer: %w", t.Version, err)
	}
	return nil
}

// Set is a set of templates that override the embedded ones by name
// (loaded with LoadFile). A nil Set is the embedded templates.
type Set map[string]*Template

// LoadSet reads override files into a Set; two files for one name are an
// error.
func LoadSet(files []string) (Set, error) {
	s := Set{}
	for _, f := range files {
		t, err := LoadFile(f)
		if err != nil {
			return nil, err
		}
		if prev, dup := s[t.Name]; dup {
			return nil, fmt.Errorf("prompt %s: given twice (%s and %s)", t.Name, prev.Source, f)
		}
		s[t.Name] = t
	}
	return s, nil
}

// Load returns the override called name, else the embedded template.
func (s Set) Load(name string) (*Template, error) {
	if t, ok := s[name]; ok {
		return t, nil
	}
	return Load(name)
}

// TaskVersion is TaskVersion with this set's overrides.
func (s Set) TaskVersion(task string) (string, error) {
	names, err := taskTemplates(task)
	if err != nil {
		return "", err
	}
	vs := make([]string, 0, len(names))
	for _, n := range names {
		t, err := s.Load(n)
		if err != nil {
			return "", err
		}
		vs = append(vs, t.Version)
	}
	return strings.Join(vs, "+"), nil
}

// TypeVersion is TaskVersion for an item of a file type ("eml", "pdf",
// ...): an email message is summarized with the correspondence template
// alone, so its version is that template's; any other type's is the task's.
func (s Set) TypeVersion(task, fileType string) (string, error) {
	if tmpl := TypeTemplate(task, fileType); tmpl != "" {
		t, err := s.Load(tmpl)
		if err != nil {
			return "", err
		}
		return t.Version, nil
	}
	return s.TaskVersion(task)
}

// TypeTemplate is the one template a task uses for an item of fileType
// instead of the task's own: Correspondence for a summarized email
// message ("eml"); "" for any other.
func TypeTemplate(task, fileType string) string {
	if task == "summarize" && fileType == "eml" {
		return Correspondence
	}
	return ""
}

func taskTemplates(task string) ([]string, error) {
	switch task {
	case "caption":
		return []string{Caption}, nil
	case "summarize":
		return []string{Summary, SummaryMap, SummaryReduce}, nil
	}
	return nil, fmt.Errorf("prompts for task %q: %w", task, ErrNotFound)
}

// TaskVersion is the version of every template a task uses, joined: it
// changes whenever any of them changes, so results made with older wording
// are not taken as current. task is "caption" or "summarize".
func TaskVersion(task string) (string, error) {
	return Set(nil).TaskVersion(task)
}
