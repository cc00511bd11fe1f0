package evidence

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Status is the result of checking one quote.
type Status string

// The statuses of a quote.
const (
	// Found: the quote is on its cited pages.
	Found Status = "found"
	// NotFound: the quote is not on its cited pages (or cites none).
	NotFound Status = "not_found"
	// Missing: the fact states something but carries no quote.
	Missing Status = "missing"
	// Unverifiable: every cited page was read as an image (no text layer).
	Unverifiable Status = "unverifiable"
)

// Source is the text a document's quotes are checked against.
type Source struct {
	// Pages maps a 1-based page number to its extracted text. A document
	// without page markers (plain text, DOCX, HTML) has its whole text as
	// page 0: its quotes are checked against all of it, whatever pages they
	// cite. Text before the first marker is page 0 too, checked for quotes
	// that cite no page.
	Pages map[int]string
	// Scanned lists pages that had no text layer and were read as images.
	Scanned map[int]bool

	norm map[int]string // cache of normalized pages
}

// NewSource splits text with "[page N]" markers (prompts.PageMarkerPattern)
// into a Source; scanned lists the pages read as images.
func NewSource(text string, scanned []int) *Source {
	s := &Source{Pages: map[int]string{}, Scanned: map[int]bool{}}
	locs := markerRE.FindAllStringSubmatchIndex(text, -1)
	if len(locs) == 0 {
		s.Pages[0] = text
	} else if pre := text[:locs[0][0]]; strings.TrimSpace(pre) != "" {
		s.Pages[0] = pre // text before the first marker: found by quotes that cite no page
	}
	for i, l := range locs {
		var n int
		fmt.Sscanf(text[l[2]:l[3]], "%d", &n)
		end := len(text)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		s.Pages[n] += text[l[1]:end]
	}
	for _, p := range scanned {
		s.Scanned[p] = true
	}
	return s
}

// markerRE is prompts.PageMarkerPattern (this package imports nothing of
// the project's).
var markerRE = regexp.MustCompile(`\[page (\d{1,6})\]`)

func (s *Source) normalized(page int) (string, bool) {
	t, ok := s.Pages[page]
	if !ok {
		return "", false
	}
	if s.norm == nil {
		s.norm = map[int]string{}
	}
	if n, ok := s.norm[page]; ok {
		return n, true
	}
	n := Normalize(t)
	s.norm[page] = n
	return n, true
}

// Check says whether quote is on the cited pages: found on them (read in
// order, so a quote may run across a page break), not found, or
// unverifiable when every cited page was read as an image. A quote with
// an ellipsis ("…" or "...") is found when its pieces are, in order.
func (s *Source) Check(quote string, pages []int) Status {
	q := Normalize(quote)
	if q == "" {
		return Missing
	}
	var text string
	if whole, ok := s.normalized(0); ok && len(s.Pages) == 1 {
		text = whole
	} else {
		ps := append([]int(nil), pages...)
		if len(ps) == 0 {
			ps = []int{0}
		}
		sort.Ints(ps)
		scanned, cited := 0, 0
		var parts []string
		for i, p := range ps {
			if i > 0 && p == ps[i-1] {
				continue
			}
			cited++
			if s.Scanned[p] {
				scanned++
				continue
			}
			if t, ok := s.normalized(p); ok {
				parts = append(parts, t)
			}
		}
		if cited > 0 && scanned == cited {
			return Unverifiable
		}
		text = strings.Join(parts, " ")
	}
	if containsInOrder(text, q) {
		return Found
	}
	return NotFound
}

// containsInOrder reports whether every piece of q between ellipses is in
// text, in order.
func containsInOrder(text, q string) bool {
	pieces := ellipsisRE.Split(q, -1)
	at, any := 0, false
	for _, p := range pieces {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		any = true
		i := strings.Index(text[at:], p)
		if i < 0 {
			return false
		}
		at += i + len(p)
	}
	return any
}

var ellipsisRE = regexp.MustCompile(`\s*(?:…|\.\.\.+|\[\s*(?:…|\.\.\.)\s*\])\s*`)

var (
	// lineHyphenRE is a word broken at a line end ("termi-\nnation"), or
	// broken so and copied with a space ("termi- nation"). It applies to
	// quotes and pages alike, so "long- and short-term" still matches.
	lineHyphenRE = regexp.MustCompile(`(\pL)[-\x{2010}\x{2011}\x{00AD}]\s+(\pL)`)
	spaceRE      = regexp.MustCompile(`\s+`)
	// replacer maps typographic forms to plain ones.
	replacer = strings.NewReplacer(
		"\u00ad", "", // soft hyphen
		"\u2018", "'", "\u2019", "'", "\u201a", "'", "\u201b", "'", "\u2032", "'", "`", "'", "\u00b4", "'",
		"\u201c", `"`, "\u201d", `"`, "\u201e", `"`, "\u201f", `"`, "\u2033", `"`, "\u00ab", `"`, "\u00bb", `"`,
		"\u2010", "-", "\u2011", "-", "\u2012", "-", "\u2013", "-", "\u2014", "-", "\u2015", "-", "\u2212", "-",
		"\u00a0", " ", "\u2009", " ", "\u202f", " ",
	)
)

// Normalize returns s as quotes are compared: compatibility forms folded
// (NFKC: "ﬁ" is "fi"), words hyphenated at a line end joined, typographic
// quotes, apostrophes and dashes made plain, soft hyphens dropped, runs of
// white space made one space, trimmed, and lower-cased.
func Normalize(s string) string {
	s = norm.NFKC.String(s)
	s = lineHyphenRE.ReplaceAllString(s, "$1$2")
	s = replacer.Replace(s)
	s = spaceRE.ReplaceAllString(s, " ")
	s = strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '\'' })
	return strings.ToLower(s)
}
