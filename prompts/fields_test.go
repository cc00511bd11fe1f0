package prompts

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestOrderedFields(t *testing.T) {
	doc := map[string]any{"zeta": 1, "parties": 1, "document_type": 1, "quote_check": 1, "alpha": 1, "subject": 1}
	got := OrderedFields(doc, "quote_check")
	want := []string{"subject", "document_type", "parties", "alpha", "zeta"}
	if !slices.Equal(got, want) {
		t.Errorf("OrderedFields = %v, want %v", got, want)
	}
}

// Every field the digest schemas define has its place in DigestFields, so
// a field added to a schema is not shown at the end by name by accident.
func TestDigestFieldsCoverTheSchemas(t *testing.T) {
	for _, name := range []string{SchemaContractDigest, SchemaCorrespondenceDigest} {
		raw, err := SchemaJSON(name)
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(raw, &s); err != nil || len(s.Properties) == 0 {
			t.Fatalf("%s: %v (%d properties)", name, err, len(s.Properties))
		}
		for p := range s.Properties {
			if !slices.Contains(DigestFields, p) {
				t.Errorf("%s: field %q has no place in DigestFields", name, p)
			}
		}
	}
}
