package offline

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/llamapipe/llamapipe/prompts"
)

// sentence is one sentence of a document, whitespace collapsed.
type sentence struct {
	text string
	// pages the sentence comes from (from page markers); empty when unknown.
	pages []int
	// quote is the verbatim quote behind a partial result's fact; empty
	// for a sentence of the document (its text is the quote).
	quote string
}

// quoteText is what the sentence quotes verbatim: its partial result's
// quote, else its own text.
func (s sentence) quoteText() string {
	if s.quote != "" {
		return s.quote
	}
	return s.text
}

// maxSentenceBytes caps a "sentence" in text without punctuation (tables,
// badly extracted PDFs): longer runs are cut at a space.
const maxSentenceBytes = 1200

// splitDocument splits document text into sentences, reading page markers.
func splitDocument(text string) []sentence {
	var out []sentence
	for _, p := range prompts.SplitPages(text) {
		var pages []int
		if p.Page > 0 {
			pages = []int{p.Page}
		}
		for _, s := range splitSentences(p.Text) {
			out = append(out, sentence{text: s, pages: pages})
		}
	}
	return out
}

// abbreviations end with a period that does not end a sentence (lower case,
// without the final period).
var abbreviations = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "dr": true, "prof": true, "sr": true, "jr": true,
	"st": true, "vs": true, "etc": true, "inc": true, "ltd": true, "co": true, "corp": true,
	"llc": true, "plc": true, "no": true, "nos": true, "art": true, "sec": true, "para": true,
	"p": true, "pp": true, "fig": true, "approx": true, "cf": true, "al": true, "dept": true,
	"est": true, "vol": true, "ed": true, "jan": true, "feb": true, "mar": true, "apr": true,
	"jun": true, "jul": true, "aug": true, "sep": true, "sept": true, "oct": true, "nov": true,
	"dec": true, "ca": true, "incl": true, "excl": true, "min": true, "max": true, "ref": true,
	"resp": true, "viz": true, "z.b": true, "bzw": true, "usw": true, "ggf": true, "gem": true,
	"abs": true, "nr": true, "s": true,
}

func isCJKStop(r rune) bool {
	switch r {
	case '。', '！', '？', '｡':
		return true
	}
	return false
}

func isClosing(r rune) bool {
	switch r {
	case '"', '\'', '”', '’', '»', ')', ']', '}', '」', '』', '）', '】', '》', '〉', '］':
		return true
	}
	return false
}

// splitSentences splits text into sentences. It never drops or reorders a
// non-space character: joining the results without spaces gives the input
// without spaces. Each result is trimmed, whitespace-collapsed and non-empty.
func splitSentences(text string) []string {
	var out []string
	start := 0
	// earlierLines: the current sentence has text on lines before this one.
	earlierLines := false
	emit := func(end int) {
		if end <= start {
			return
		}
		if s := strings.Join(strings.Fields(text[start:end]), " "); s != "" {
			out = append(out, s)
		}
		start = end
		earlierLines = false
	}
	lineStart := 0
	for i := 0; i < len(text); {
		r, w := utf8.DecodeRuneInString(text[i:])
		next := i + w

		if i-start >= maxSentenceBytes {
			cut := strings.LastIndexFunc(text[start:i], unicode.IsSpace)
			if cut > 0 {
				emit(start + cut)
			} else {
				emit(i)
			}
		}

		switch {
		case r == '\n':
			from := max(lineStart, start)
			hasText := strings.TrimSpace(text[from:i]) != ""
			if blankLineFollows(text[next:]) ||
				(!earlierLines && isHeading(text[from:i]) && startsUpperOrDigit(text[next:])) {
				emit(next)
			} else if hasText {
				earlierLines = true
			}
			lineStart = next
		case isCJKStop(r):
			emit(skipClosing(text, next))
			next = start
		case r == '!' || r == '?' || r == '…':
			end := skipClosing(text, skipTerminators(text, next))
			if end == len(text) || startsSpace(text[end:]) {
				emit(end)
				next = end
			}
		case r == '.':
			end := skipClosing(text, skipTerminators(text, next))
			if (end == len(text) || startsSpace(text[end:])) && periodEnds(text, start, i, end) {
				emit(end)
				next = end
			}
		}
		if next < i+w {
			next = i + w
		}
		i = next
	}
	emit(len(text))
	return out
}

// periodEnds decides whether the period at i (sentence from start, the
// period and closing marks end at end) ends a sentence.
func periodEnds(text string, start, i, end int) bool {
	if end > i+1 && text[i+1] == '.' {
		// "..." followed by space: an ellipsis; ends unless lower case follows.
		return !startsLower(text[end:])
	}
	// The word before the period.
	j := i
	for j > start {
		r, w := utf8.DecodeLastRuneInString(text[start:j])
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.') {
			break
		}
		j -= w
	}
	word := text[j:i]
	if word == "" {
		return !startsLower(text[end:])
	}
	lw := strings.ToLower(word)
	if abbreviations[lw] || dottedAbbreviation(word) {
		return false
	}
	if utf8.RuneCountInString(word) == 1 {
		if r, _ := utf8.DecodeRuneInString(word); unicode.IsUpper(r) {
			return false // an initial: "J. Smith"
		}
	}
	if isDigits(word) && strings.TrimSpace(text[start:j]) == "" {
		return false // list numbering: "1. Definitions"
	}
	return !startsLower(text[end:])
}

// dottedAbbreviation reports words like "e.g", "U.S" or "z.B": dotted
// segments of at most three letters (not numbers like "1,250.00").
func dottedAbbreviation(word string) bool {
	if !strings.Contains(word, ".") {
		return false
	}
	for _, seg := range strings.Split(word, ".") {
		if seg == "" {
			continue
		}
		if utf8.RuneCountInString(seg) > 3 {
			return false
		}
		for _, r := range seg {
			if !unicode.IsLetter(r) {
				return false
			}
		}
	}
	return true
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func skipTerminators(text string, i int) int {
	for i < len(text) {
		r, w := utf8.DecodeRuneInString(text[i:])
		if r != '.' && r != '!' && r != '?' && r != '…' {
			break
		}
		i += w
	}
	return i
}

func skipClosing(text string, i int) int {
	for i < len(text) {
		r, w := utf8.DecodeRuneInString(text[i:])
		if !isClosing(r) {
			break
		}
		i += w
	}
	return i
}

func startsSpace(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsSpace(r)
}

// startsLower reports whether the first non-space rune of s is lower case.
func startsLower(s string) bool {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsLower(r)
}

func startsUpperOrDigit(s string) bool {
	s = strings.TrimLeft(s, " \t\r")
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsUpper(r) || unicode.IsDigit(r)
}

// blankLineFollows reports whether s (the text after a newline) starts with
// an empty line.
func blankLineFollows(s string) bool {
	for _, r := range s {
		switch r {
		case ' ', '\t', '\r':
			continue
		case '\n':
			return true
		}
		return false
	}
	return false
}

var headingWords = []string{"article", "section", "schedule", "exhibit", "annex", "appendix", "chapter", "part"}

// isHeading reports whether a line looks like a heading: short, no final
// punctuation, and all capitals, numbered ("5.1 Term") or a named division
// ("Article 5").
func isHeading(line string) bool {
	line = strings.TrimSpace(line)
	if line == "" || len(strings.Fields(line)) > 10 {
		return false
	}
	last, _ := utf8.DecodeLastRuneInString(line)
	if strings.ContainsRune(".!?:;,", last) || isCJKStop(last) {
		return false
	}
	first, _ := utf8.DecodeRuneInString(line)
	if unicode.IsDigit(first) {
		return true
	}
	lower := strings.ToLower(line)
	for _, h := range headingWords {
		if strings.HasPrefix(lower, h+" ") {
			return true
		}
	}
	letters, upper := 0, 0
	for _, r := range line {
		if unicode.IsLetter(r) {
			letters++
			if unicode.IsUpper(r) {
				upper++
			}
		}
	}
	return letters >= 2 && upper == letters
}
