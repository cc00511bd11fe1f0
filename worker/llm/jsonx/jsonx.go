package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// ErrNoJSON is returned when the text holds no JSON object that parses,
// even after repair.
var ErrNoJSON = errors.New("no JSON object in text")

// maxCandidates bounds how many '{' positions are tried, so that a long
// answer full of braces cannot make Extract quadratic.
const maxCandidates = 64

// Extract returns the first JSON object in text that is valid JSON, or
// becomes valid once trailing commas before '}' or ']' are removed. Content
// inside a ```json (or bare ```) fence is tried before the rest of the text.
// The object is returned compacted.
func Extract(text string) (json.RawMessage, error) {
	text = strings.TrimPrefix(text, "\ufeff")
	if fenced, ok := fence(text); ok {
		if obj, ok := first(fenced); ok {
			return obj, nil
		}
	}
	if obj, ok := first(text); ok {
		return obj, nil
	}
	return nil, ErrNoJSON
}

// fence returns the body of the first Markdown code fence in text.
func fence(text string) (string, bool) {
	i := strings.Index(text, "```")
	if i < 0 {
		return "", false
	}
	rest := text[i+3:]
	// Skip the info string (e.g. "json") up to the end of the line.
	if nl := strings.IndexByte(rest, '\n'); nl >= 0 && !strings.ContainsAny(rest[:nl], "{[") {
		rest = rest[nl+1:]
	}
	if j := strings.Index(rest, "```"); j >= 0 {
		return rest[:j], true
	}
	return rest, true // unterminated fence: take the rest
}

// first tries each '{' in s in order and returns the first balanced object
// that parses (after repair).
func first(s string) (json.RawMessage, bool) {
	from := 0
	for tries := 0; tries < maxCandidates; tries++ {
		i := strings.IndexByte(s[from:], '{')
		if i < 0 {
			return nil, false
		}
		start := from + i
		end, ok := balanced(s, start)
		if end == len(s) {
			// Unclosed at the end of the text (e.g. a truncated answer):
			// any later object is a fragment of this one.
			return nil, false
		}
		if ok {
			if obj, ok := parse(s[start : end+1]); ok {
				return obj, true
			}
		}
		from = start + 1
	}
	return nil, false
}

// balanced returns the index of the '}' closing the '{' at start, skipping
// brackets inside strings. It returns len(s), false when the text ends
// before the object closes.
func balanced(s string, start int) (int, bool) {
	depth := 0
	inString := false
	escaped := false
	for i := start; i < len(s); i++ {
		c := s[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				if c != '}' {
					return 0, false
				}
				return i, true
			}
			if depth < 0 {
				return 0, false
			}
		}
	}
	return len(s), false
}

func parse(candidate string) (json.RawMessage, bool) {
	for _, c := range []string{candidate, removeTrailingCommas(candidate)} {
		if !json.Valid([]byte(c)) {
			continue
		}
		var buf bytes.Buffer
		if json.Compact(&buf, []byte(c)) != nil {
			continue
		}
		return json.RawMessage(buf.Bytes()), true
	}
	return nil, false
}

// removeTrailingCommas drops each ',' that is followed (after white space)
// by '}' or ']', outside strings.
func removeTrailingCommas(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	inString, escaped := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			b.WriteByte(c)
			continue
		}
		if c == '"' {
			inString = true
		}
		if c == ',' {
			j := i + 1
			for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r') {
				j++
			}
			if j < len(s) && (s[j] == '}' || s[j] == ']') {
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}
