package prompts

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func validCaption() map[string]any {
	return map[string]any{
		"alt_text":     "White enamel mug with a blue rim",
		"caption":      "A white enamel mug with a blue rim.",
		"title":        "Enamel mug",
		"category":     "mug",
		"colors":       []string{"white", "blue"},
		"material":     "enamel",
		"attributes":   map[string]string{"rim": "blue"},
		"tags":         []string{"mug", "enamel"},
		"visible_text": "",
		"quality": map[string]bool{
			"blurry": false, "background_not_white": false, "watermark": false,
			"multiple_products": false, "contains_person": false,
		},
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidateCaption(t *testing.T) {
	tp, err := Load(Caption)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(tp.Schema, mustJSON(t, validCaption())); err != nil {
		t.Fatalf("valid caption rejected: %v", err)
	}
	long := strings.Repeat("é", 126) // maxLength counts characters, not bytes
	ok := strings.Repeat("é", 125)
	bad := []struct {
		name   string
		mutate func(m map[string]any)
		want   string
	}{
		{"alt_text too long", func(m map[string]any) { m["alt_text"] = long }, "/alt_text: maxLength"},
		{"missing tags", func(m map[string]any) { delete(m, "tags") }, "missing property 'tags'"},
		{"extra field", func(m map[string]any) { m["price"] = "9" }, "additional properties 'price'"},
		{"colors not array", func(m map[string]any) { m["colors"] = "red" }, "/colors: got string, want array"},
		{"quality flag string", func(m map[string]any) {
			m["quality"] = map[string]any{"blurry": "yes", "background_not_white": false, "watermark": false, "multiple_products": false, "contains_person": false}
		}, "/quality/blurry"},
		{"attribute not string", func(m map[string]any) { m["attributes"] = map[string]any{"size": 3} }, "/attributes/size"},
	}
	for _, c := range bad {
		m := validCaption()
		c.mutate(m)
		err := tp.Validate(mustJSON(t, m))
		if !errors.Is(err, ErrInvalidAnswer) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrInvalidAnswer mentioning %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "éé") {
			t.Errorf("%s: error quotes the answer: %v", c.name, err)
		}
	}
	m := validCaption()
	m["alt_text"] = ok
	if err := tp.Validate(mustJSON(t, m)); err != nil {
		t.Errorf("125 characters rejected: %v", err)
	}
}

func TestValidateNotJSON(t *testing.T) {
	tp, err := Load(Caption)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{"", "Sure! Here is the JSON:", "```json\n{}\n```", `{"a":1} trailing`, `{} {}`} {
		if err := tp.Validate([]byte(doc)); !errors.Is(err, ErrInvalidAnswer) {
			t.Errorf("%q: err = %v", doc, err)
		}
	}
}

func TestValidateDigestAndFacts(t *testing.T) {
	digest := map[string]any{
		"document_type": "license", "parties": []any{map[string]any{"name": "Acme", "role": "licensor", "quote": "Acme (Licensor)", "pages": []int{1}}},
		"effective_date": fact(""), "key_dates": []any{}, "term": fact("two years"),
		"renewal":            map[string]any{"value": "yearly", "automatic": true, "notice": "90 days", "quote": "renews", "pages": []int{3}},
		"termination_rights": fact(""), "payment_terms": fact(""), "liability_caps": fact(""), "indemnities": fact(""),
		"confidentiality": fact(""), "governing_law_and_venue": fact(""), "obligations": []any{},
		"risky_clauses":     []any{map[string]any{"clause": "auto renewal", "quote": "renews", "pages": []int{3}}},
		"executive_summary": "x",
	}
	schema, err := SchemaJSON(SchemaContractDigest)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(schema, mustJSON(t, digest)); err != nil {
		t.Fatalf("valid digest rejected: %v", err)
	}
	digest["payment_terms"] = "net 30" // version 1's plain string: every fact needs its quote now
	if err := Validate(schema, mustJSON(t, digest)); !errors.Is(err, ErrInvalidAnswer) {
		t.Errorf("a fact without its quote accepted: %v", err)
	}
	digest["payment_terms"] = fact("")
	digest["risky_clauses"] = []any{map[string]any{"clause": "c", "quote": "q", "pages": []any{0}}}
	if err := Validate(schema, mustJSON(t, digest)); !errors.Is(err, ErrInvalidAnswer) {
		t.Errorf("page 0 accepted: %v", err)
	}
	digest["risky_clauses"] = []any{map[string]any{"clause": "c", "quote": "q", "pages": []any{1.5}}}
	if err := Validate(schema, mustJSON(t, digest)); !errors.Is(err, ErrInvalidAnswer) {
		t.Errorf("page 1.5 accepted: %v", err)
	}

	facts, err := SchemaJSON(SchemaChunkFacts)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(facts, []byte(`{"facts":[{"fact":"f","quote":"q","pages":[1,2]}],"document_type_hint":""}`)); err != nil {
		t.Errorf("valid facts rejected: %v", err)
	}
	if err := Validate(facts, []byte(`{"facts":[{"fact":"f","pages":[1]}],"document_type_hint":""}`)); !errors.Is(err, ErrInvalidAnswer) {
		t.Errorf("fact without quote accepted: %v", err)
	}
}

func TestValidateBadSchema(t *testing.T) {
	for _, s := range []string{`{`, `{"type":"strang"}`, `{"$ref":"https://example.com/s.json"}`} {
		if err := Validate(json.RawMessage(s), []byte(`{}`)); !errors.Is(err, ErrBadSchema) {
			t.Errorf("%s: err = %v, want ErrBadSchema", s, err)
		}
	}
}

func TestEmbeddedSchemasAreStrictObjects(t *testing.T) {
	// Every object in our schemas lists all its properties as required and
	// forbids others (what strict structured-output modes demand), except
	// caption.attributes, a free string map.
	for _, name := range []string{SchemaCaption, SchemaContractDigest, SchemaChunkFacts} {
		raw, err := SchemaJSON(name)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		var walk func(path string, v any)
		walk = func(path string, v any) {
			m, ok := v.(map[string]any)
			if !ok {
				return
			}
			if props, ok := m["properties"].(map[string]any); ok {
				req, _ := m["required"].([]any)
				if len(req) != len(props) || m["additionalProperties"] != false {
					t.Errorf("%s%s: not strict (required %d of %d)", name, path, len(req), len(props))
				}
				for k, p := range props {
					walk(path+"/"+k, p)
				}
			}
			if it, ok := m["items"]; ok {
				walk(path+"[]", it)
			}
		}
		walk("", doc)
	}
}

// fact is a contract_digest fact field (version 2) with its quote and pages.
func fact(v string) map[string]any {
	return map[string]any{"value": v, "quote": v, "pages": []int{}}
}
