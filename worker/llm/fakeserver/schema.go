package fakeserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Generate returns a small JSON document valid for schema: every declared
// property of an object (so additionalProperties: false holds), arrays of
// minItems items (at least one unless maxItems is 0), strings of filler
// text within minLength/maxLength, numbers within minimum/maximum, the
// first of an enum, const values, and local $refs (#/$defs/..,
// #/definitions/..). Keywords it does not understand (pattern, format other
// than date and date-time, if/then/else) are ignored.
func Generate(schema json.RawMessage) ([]byte, error) { return GenerateQuoting(schema, "") }

// GenerateQuoting is Generate for an answer that quotes its prompt: an
// object with a "quote" property (a fact with its evidence) quotes the
// prompt's text verbatim (see quoteFrom) with the page it is on in its
// "pages", and keeps its other strings short, as a model quoting a
// document would.
func GenerateQuoting(schema json.RawMessage, prompt string) ([]byte, error) {
	var root any
	if err := json.Unmarshal(schema, &root); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	g := &generator{root: root}
	g.quote, g.page = quoteFrom(prompt)
	v, err := g.value(root, "answer", 0, 0)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

type generator struct {
	root any
	// quote and page are what evidence objects cite; short is set while
	// one is generated.
	quote string
	page  int
	short bool
}

// Quotes in a reduce prompt's partial results (keys sorted: pages first).
var (
	partialQuoteRE = regexp.MustCompile(`"pages":\[(\d+)[^\]]*\],"quote":"((?:[^"\\]|\\.)+)"`)
	pageMarkerRE   = regexp.MustCompile(`\[page (\d{1,6})\]`)
)

// quoteFrom picks what an answer to prompt quotes: the first quote of a
// partial result in it (a reduce), else the first eight words of the first
// page with text, or the last eight words of a prompt without page markers
// (its document part comes last), cited as page 1.
func quoteFrom(prompt string) (string, int) {
	if m := partialQuoteRE.FindStringSubmatch(prompt); m != nil {
		var q string
		if json.Unmarshal([]byte(`"`+m[2]+`"`), &q) == nil {
			p, _ := strconv.Atoi(m[1])
			return q, p
		}
	}
	locs := pageMarkerRE.FindAllStringSubmatchIndex(prompt, -1)
	if len(locs) == 0 { // text without pages comes last, after the instructions
		if w := strings.Fields(prompt); len(w) >= 4 {
			return strings.Join(w[max(len(w)-8, 0):], " "), 1
		}
		return "", 0
	}
	for i, l := range locs {
		end := len(prompt)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		if w := strings.Fields(prompt[l[1]:end]); len(w) >= 4 {
			p, _ := strconv.Atoi(prompt[l[2]:l[3]])
			return strings.Join(w[:min(len(w), 8)], " "), p
		}
	}
	return "", 0
}

const maxDepth = 24

// shortString caps the strings of a fact that quotes its evidence.
const shortString = 60

var errDepth = errors.New("schema: nested too deeply (recursive $ref?)")

func (g *generator) value(node any, name string, index, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	s, ok := node.(map[string]any)
	if !ok {
		// true / {} accept anything; false accepts nothing (not generated).
		return fmt.Sprintf("synthetic %s", words(name)), nil
	}
	if ref, ok := s["$ref"].(string); ok {
		target, err := g.resolve(ref)
		if err != nil {
			return nil, err
		}
		return g.value(target, name, index, depth+1)
	}
	if c, ok := s["const"]; ok {
		return c, nil
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return e[index%len(e)], nil
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		if alts, ok := s[k].([]any); ok && len(alts) > 0 {
			if k == "allOf" {
				return g.value(mergeAll(s, alts), name, index, depth+1)
			}
			return g.value(alts[0], name, index, depth+1)
		}
	}
	switch typeOf(s) {
	case "object":
		return g.object(s, depth)
	case "array":
		return g.array(s, name, depth)
	case "string":
		if v := stringValue(s, name, index); g.short && len(v) > shortString {
			return strings.TrimSpace(v[:shortString]), nil
		} else {
			return v, nil
		}
	case "integer":
		return integerValue(s, index), nil
	case "number":
		return numberValue(s, index), nil
	case "boolean":
		return false, nil
	case "null":
		return nil, nil
	}
	return fmt.Sprintf("synthetic %s", words(name)), nil
}

// typeOf is the schema's type (the first non-null of a list), inferred from
// its keywords when absent.
func typeOf(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		first := ""
		for _, x := range t {
			if ts, ok := x.(string); ok {
				if first == "" {
					first = ts
				}
				if ts != "null" {
					return ts
				}
			}
		}
		return first
	}
	switch {
	case s["properties"] != nil || s["required"] != nil || s["additionalProperties"] != nil:
		return "object"
	case s["items"] != nil || s["prefixItems"] != nil:
		return "array"
	case s["maxLength"] != nil || s["minLength"] != nil || s["pattern"] != nil:
		return "string"
	case s["minimum"] != nil || s["maximum"] != nil:
		return "number"
	}
	return ""
}

func (g *generator) resolve(ref string) (any, error) {
	p, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("schema: external $ref %q is not supported", ref)
	}
	cur := g.root
	for _, part := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if part == "" {
			continue
		}
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("schema: $ref %q does not resolve", ref)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("schema: $ref %q does not resolve", ref)
		}
	}
	return cur, nil
}

// mergeAll folds allOf's subschemas (and the parent's own keywords) into one
// schema: properties and required are united, other keywords the last wins.
func mergeAll(parent map[string]any, alts []any) map[string]any {
	out := map[string]any{}
	props := map[string]any{}
	var required []any
	add := func(m map[string]any) {
		for k, v := range m {
			switch k {
			case "allOf":
			case "properties":
				if pm, ok := v.(map[string]any); ok {
					for pk, pv := range pm {
						props[pk] = pv
					}
				}
			case "required":
				if r, ok := v.([]any); ok {
					required = append(required, r...)
				}
			default:
				out[k] = v
			}
		}
	}
	add(parent)
	for _, a := range alts {
		if m, ok := a.(map[string]any); ok {
			add(m)
		}
	}
	if len(props) > 0 {
		out["properties"] = props
	}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

func (g *generator) object(s map[string]any, depth int) (any, error) {
	out := map[string]any{}
	props, _ := s["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	// Required names without a property schema still need a value.
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			if rs, ok := r.(string); ok {
				if _, ok := props[rs]; !ok {
					names = append(names, rs)
				}
			}
		}
	}
	sort.Strings(names)
	_, evidence := props["quote"]
	if evidence && g.quote != "" {
		g.short = true
		defer func() { g.short = false }()
	}
	for _, k := range names {
		if evidence && g.quote != "" {
			switch k {
			case "quote":
				out[k] = g.quote
				continue
			case "pages":
				out[k] = []any{g.page}
				continue
			}
		}
		v, err := g.value(props[k], k, 0, depth+1)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	// A map-like object (additionalProperties is a schema, no properties):
	// one entry, when maxProperties allows, for a realistic answer.
	if ap, ok := s["additionalProperties"].(map[string]any); ok && len(props) == 0 {
		maxP, has := num(s, "maxProperties")
		minP, _ := num(s, "minProperties")
		n := max(int(minP), 1)
		if has {
			n = min(n, int(maxP))
		}
		for i := range n {
			key := fmt.Sprintf("attribute_%d", i+1)
			v, err := g.value(ap, key, i, depth+1)
			if err != nil {
				return nil, err
			}
			out[key] = v
		}
	}
	return out, nil
}

func (g *generator) array(s map[string]any, name string, depth int) (any, error) {
	minI, _ := num(s, "minItems")
	maxI, hasMax := num(s, "maxItems")
	n := max(int(minI), 1)
	if hasMax {
		n = min(n, int(maxI))
	}
	var prefix []any
	if p, ok := s["prefixItems"].([]any); ok {
		prefix = p
	}
	out := make([]any, 0, n)
	for i := range n {
		var item any = s["items"]
		if i < len(prefix) {
			item = prefix[i]
		}
		if item == nil {
			item = map[string]any{"type": "string"}
		}
		v, err := g.value(item, singular(name), i, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func num(s map[string]any, k string) (float64, bool) {
	f, ok := s[k].(float64)
	return f, ok
}

const filler = "This synthetic text stands in for a model's answer so that the pipeline can be measured without one. " +
	"It reads like a sentence, compresses like a sentence and counts like one, but says nothing at all about the input. "

// stringValue is filler text about name, within the schema's length limits:
// about a third of maxLength (at most 240 characters), or 40 without one.
func stringValue(s map[string]any, name string, index int) string {
	switch s["format"] {
	case "date":
		return fmt.Sprintf("2026-01-%02d", index%28+1)
	case "date-time":
		return fmt.Sprintf("2026-01-%02dT00:00:00Z", index%28+1)
	}
	maxL, hasMax := num(s, "maxLength")
	minL, _ := num(s, "minLength")
	target := 40
	if hasMax {
		target = min(int(maxL)/3, 240)
	}
	target = max(target, int(minL), 1)
	if hasMax {
		target = min(target, int(maxL))
	}
	head := words(name)
	if index > 0 {
		head += fmt.Sprintf(" %d", index+1)
	}
	text := head + ": " + filler
	for len(text) < target {
		text += filler
	}
	text = text[:target] // ASCII: bytes are characters
	if hasMax || minL > 0 {
		return text
	}
	return strings.TrimSpace(text)
}

func integerValue(s map[string]any, index int) int64 {
	lo, hasLo := num(s, "minimum")
	if x, ok := num(s, "exclusiveMinimum"); ok {
		lo, hasLo = math.Floor(x)+1, true
	}
	hi, hasHi := num(s, "maximum")
	if x, ok := num(s, "exclusiveMaximum"); ok {
		hi, hasHi = math.Ceil(x)-1, true
	}
	v := float64(index + 1)
	if hasLo {
		v = math.Ceil(lo) + float64(index)
	}
	if hasHi && v > hi {
		v = math.Floor(hi)
	}
	return int64(v)
}

func numberValue(s map[string]any, index int) float64 {
	lo, hasLo := num(s, "minimum")
	hi, hasHi := num(s, "maximum")
	v := float64(index) + 0.5
	if x, ok := num(s, "exclusiveMinimum"); ok {
		lo, hasLo = x+0.5, true
	}
	if x, ok := num(s, "exclusiveMaximum"); ok {
		hi, hasHi = x-0.5, true
	}
	switch {
	case hasLo && hasHi:
		v = lo + (hi-lo)/2
	case hasLo:
		v = lo + float64(index)
	case hasHi && v > hi:
		v = hi
	}
	return v
}

func words(name string) string { return strings.ReplaceAll(name, "_", " ") }

func singular(name string) string {
	switch {
	case strings.HasSuffix(name, "ies"):
		return strings.TrimSuffix(name, "ies") + "y"
	case strings.HasSuffix(name, "s") && !strings.HasSuffix(name, "ss"):
		return strings.TrimSuffix(name, "s")
	}
	return name
}
