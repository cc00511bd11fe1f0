package document

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/llamapipe/llamapipe/worker/stage"
)

func compactJSON(doc map[string]any) string {
	b, err := json.Marshal(doc)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// digestOrder is the order sections appear in summary.md; other keys follow
// alphabetically.
var digestOrder = []string{"document_type", "executive_summary", "parties", "effective_date", "term_and_renewal",
	"termination_rights", "payment_terms", "liability_caps", "indemnities", "confidentiality",
	"governing_law_and_venue", "risky_clauses"}

// renderDigest renders a summary JSON as Markdown for people.
func renderDigest(title string, doc map[string]any, m stage.Meta) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# %s\n\n", title)
	seen := map[string]bool{}
	keys := []string{}
	for _, k := range digestOrder {
		if _, ok := doc[k]; ok {
			keys = append(keys, k)
			seen[k] = true
		}
	}
	var rest []string
	for k := range doc {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	keys = append(keys, rest...)
	for _, k := range keys {
		v := doc[k]
		if isEmpty(v) {
			continue
		}
		fmt.Fprintf(&sb, "## %s\n\n", heading(k))
		writeValue(&sb, v, 0)
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, "---\nModel %s (%s), prompt %s, source %s (ETag %s), %d input / %d output tokens.\n",
		m.Model, m.Provider, m.PromptVersion, m.Source, m.SourceETag, m.InputTokens, m.OutputTokens)
	return sb.String()
}

func heading(k string) string {
	s := strings.ReplaceAll(k, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(t) == ""
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	}
	return false
}

func writeValue(sb *strings.Builder, v any, depth int) {
	indent := strings.Repeat("  ", depth)
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			switch e := e.(type) {
			case map[string]any:
				sb.WriteString(indent + "- " + inlineObject(e) + "\n")
			default:
				fmt.Fprintf(sb, "%s- %v\n", indent, e)
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if isEmpty(t[k]) {
				continue
			}
			fmt.Fprintf(sb, "%s- **%s**: %v\n", indent, heading(k), flat(t[k]))
		}
	default:
		fmt.Fprintf(sb, "%s%v\n", indent, t)
	}
}

// inlineObject renders {"clause": .., "quote": .., "pages": [..]} on one line.
func inlineObject(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if isEmpty(m[k]) {
			continue
		}
		parts = append(parts, fmt.Sprintf("**%s**: %v", heading(k), flat(m[k])))
	}
	return strings.Join(parts, "; ")
}

func flat(v any) string {
	switch t := v.(type) {
	case []any:
		s := make([]string, len(t))
		for i, e := range t {
			s[i] = fmt.Sprint(flat(e))
		}
		return strings.Join(s, ", ")
	case map[string]any:
		return inlineObject(t)
	}
	return fmt.Sprint(v)
}
