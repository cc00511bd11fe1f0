package document

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/stage"
)

func compactJSON(doc map[string]any) string {
	b, err := json.Marshal(doc)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// renderDigest renders a summary JSON as Markdown for people.
func renderDigest(title string, doc map[string]any, m stage.Meta) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# %s\n\n", title)
	if qc, ok := doc[KeyQuoteCheck].(map[string]any); ok {
		fmt.Fprintf(&sb, "**Quotes:** %v.", qc["summary"])
		if n, _ := qc["unverified"].(int); n > 0 {
			fmt.Fprintf(&sb, " %d flagged ⚠: not found on the pages they cite; check them in the document.", n)
		}
		sb.WriteString("\n\n")
	}
	keys := prompts.OrderedFields(doc, KeyQuoteCheck)
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
		if _, ok := t["quote"]; ok { // a fact the document does not state
			q, _ := t["quote"].(string)
			return strings.TrimSpace(q) == "" && t["check"] == nil && onlyValue(t) && isEmpty(t["value"])
		}
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
				if _, ok := e["quote"]; ok {
					sb.WriteString(indent + "- " + inlineObject(withoutEvidence(e)) + "\n")
					writeQuote(sb, e, indent+"  ")
					continue
				}
				sb.WriteString(indent + "- " + inlineObject(e) + "\n")
			default:
				fmt.Fprintf(sb, "%s- %v\n", indent, e)
			}
		}
	case map[string]any:
		if _, ok := t["quote"]; ok { // a fact with its evidence
			if v, ok := t["value"].(string); ok && onlyValue(t) {
				fmt.Fprintf(sb, "%s%s\n", indent, v)
			} else {
				sb.WriteString(indent + inlineObject(withoutEvidence(t)) + "\n")
			}
			sb.WriteString("\n")
			writeQuote(sb, t, indent)
			return
		}
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

// evidenceKeys are a fact's quote and its check, rendered by writeQuote.
var evidenceKeys = map[string]bool{"quote": true, "pages": true, "verified": true, "check": true, "flagged": true}

func withoutEvidence(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if !evidenceKeys[k] {
			out[k] = v
		}
	}
	return out
}

// onlyValue reports whether a fact has nothing but its value (and its
// evidence) to show.
func onlyValue(m map[string]any) bool {
	for k, v := range withoutEvidence(m) {
		if k != "value" && !isEmpty(v) && v != false {
			return false
		}
	}
	return true
}

// writeQuote renders a fact's quote, its pages and its check:
// "> “…” (p. 3) ✓ found on the page".
func writeQuote(sb *strings.Builder, m map[string]any, indent string) {
	q, _ := m["quote"].(string)
	if strings.TrimSpace(q) == "" && m["check"] == nil {
		return
	}
	where := "no page cited"
	if pages := flat(m["pages"]); pages != "" {
		where = "p. " + pages
	}
	_, paged := m["pages"]
	status := ""
	switch m["check"] {
	case "found":
		status = "✓ found on the page"
	case "unverifiable":
		status = "… scanned page, not checked"
	case "missing":
		status = "⚠ no quote given"
	case "not_found":
		status = "⚠ not found on the cited pages"
	}
	if strings.TrimSpace(q) == "" {
		fmt.Fprintf(sb, "%s> (no quote) %s\n\n", indent, status)
		return
	}
	if !paged { // a correspondence digest's quotes cite no pages
		status = strings.Replace(status, "found on the page", "found in the message", 1)
		fmt.Fprintf(sb, "%s> “%s” %s\n\n", indent, strings.Join(strings.Fields(q), " "), status)
		return
	}
	fmt.Fprintf(sb, "%s> “%s” (%s) %s\n\n", indent, strings.Join(strings.Fields(q), " "), where, status)
}
