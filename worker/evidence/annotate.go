package evidence

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Keys Annotate writes into each quote object of an answer.
const (
	// KeyVerified is true when the quote was found on its pages.
	KeyVerified = "verified"
	// KeyCheck is the quote's Status.
	KeyCheck = "check"
	// KeyFlagged is true on a quote that was not found (or is missing)
	// after the model was asked once more: a reader must check it.
	KeyFlagged = "flagged"
)

// Counts is how many quotes of one answer were checked and how they ended.
type Counts struct {
	// Quotes is every fact that was checked (Verified + Unverified +
	// Unverifiable).
	Quotes int `json:"quotes"`
	// Verified were found on their pages.
	Verified int `json:"verified"`
	// Unverified were not found there, or are missing.
	Unverified int `json:"unverified"`
	// Unverifiable cite only pages read as images.
	Unverifiable int `json:"unverifiable"`
}

// String is "31 of 34 quotes found on their pages", with the
// unverifiable ones named when there are any.
func (c Counts) String() string {
	s := fmt.Sprintf("%d of %d quotes found on their pages", c.Verified, c.Quotes)
	if c.Unverifiable > 0 {
		s += fmt.Sprintf(" (%d on scanned pages, unverifiable)", c.Unverifiable)
	}
	return s
}

// Add adds d to c.
func (c *Counts) Add(d Counts) {
	c.Quotes += d.Quotes
	c.Verified += d.Verified
	c.Unverified += d.Unverified
	c.Unverifiable += d.Unverifiable
}

// Unverified is one quote that was not found on its pages.
type Unverified struct {
	// Field is where it is in the answer, e.g. "payment_terms" or
	// "risky_clauses[2]".
	Field string
	Quote string
	Pages []int
}

// Annotate checks every quote object in doc (an object with a "quote" key,
// at any depth) against src and marks it in place: KeyVerified and KeyCheck
// always, KeyFlagged when flag is true and the quote was not found. An
// object whose quote and other text fields are all empty (a field the
// document does not cover) is left alone. It returns the counts and the
// quotes not found, in field order.
func Annotate(doc map[string]any, src *Source, flag bool) (Counts, []Unverified) {
	var c Counts
	var bad []Unverified
	var walk func(v any, field string)
	walk = func(v any, field string) {
		switch t := v.(type) {
		case map[string]any:
			if _, ok := t["quote"]; ok {
				checkObject(t, field, src, flag, &c, &bad)
				return
			}
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(t[k], join(field, k))
			}
		case []any:
			for i, e := range t {
				walk(e, fmt.Sprintf("%s[%d]", field, i))
			}
		}
	}
	walk(doc, "")
	return c, bad
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func checkObject(o map[string]any, field string, src *Source, flag bool, c *Counts, bad *[]Unverified) {
	quote, _ := o["quote"].(string)
	if strings.TrimSpace(quote) == "" && !states(o) {
		return
	}
	pages := Pages(o["pages"])
	st := src.Check(quote, pages)
	o[KeyVerified] = st == Found
	o[KeyCheck] = string(st)
	delete(o, KeyFlagged)
	c.Quotes++
	switch st {
	case Found:
		c.Verified++
	case Unverifiable:
		c.Unverifiable++
	default:
		c.Unverified++
		if flag {
			o[KeyFlagged] = true
		}
		*bad = append(*bad, Unverified{Field: field, Quote: quote, Pages: pages})
	}
}

// states reports whether a quote object states something: a non-empty
// string besides its quote.
func states(o map[string]any) bool {
	for k, v := range o {
		if k == "quote" || k == KeyCheck {
			continue
		}
		if s, ok := v.(string); ok && strings.TrimSpace(s) != "" {
			return true
		}
	}
	return false
}

// Pages reads a "pages" value of a decoded answer (numbers as float64 or
// json.Number).
func Pages(v any) []int {
	arr, _ := v.([]any)
	var out []int
	for _, e := range arr {
		switch n := e.(type) {
		case float64:
			out = append(out, int(n))
		case int:
			out = append(out, n)
		case json.Number:
			if i, err := n.Int64(); err == nil {
				out = append(out, int(i))
			}
		}
	}
	if ints, ok := v.([]int); ok {
		out = append(out, ints...)
	}
	return out
}

// CountsOf reads the counts an earlier Annotate left in an answer's
// quote objects (for readers of written digests: register, report).
func CountsOf(doc map[string]any) Counts {
	var c Counts
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			if st, ok := t[KeyCheck].(string); ok {
				c.Quotes++
				switch Status(st) {
				case Found:
					c.Verified++
				case Unverifiable:
					c.Unverifiable++
				default:
					c.Unverified++
				}
				return
			}
			for _, e := range t {
				walk(e)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(doc)
	return c
}
