package chunk

import (
	"unicode"
	"unicode/utf8"
)

// Chunk is one piece of a text.
type Chunk struct {
	// Index is the chunk's position, from 0.
	Index int
	// Text is exactly input[Start:End].
	Text string
	// Start and End are byte offsets into the input.
	Start, End int
	// Tokens is EstimateTokens(Text).
	Tokens int
}

// EstimateTokens returns a cheap, deterministic estimate of how many tokens
// s costs, meant to err on the high side for BPE tokenizers such as
// Llama's: an ASCII character (letters, digits, punctuation, white space)
// counts a quarter token (~4 characters per token for English and other
// Latin-script text), a CJK character (Han, kana, Hangul, CJK punctuation,
// full-width forms) a whole token, and any other character (accented
// letters, Cyrillic, Greek, Arabic, emoji …) half a token. The sum is
// rounded up.
func EstimateTokens(s string) int {
	q := 0
	for _, r := range s {
		q += quarters(r)
	}
	return (q + 3) / 4
}

// quarters is the cost of r in quarter tokens.
func quarters(r rune) int {
	switch {
	case r < utf8.RuneSelf:
		return 1
	case isCJK(r):
		return 4
	default:
		return 2
	}
}

func isCJK(r rune) bool {
	switch {
	case r < 0x1100: // below Hangul Jamo: Latin, Greek, Cyrillic, …
		return false
	case r >= 0x3000 && r <= 0x303F, // CJK symbols and punctuation
		r >= 0xFF00 && r <= 0xFFEF: // half- and full-width forms
		return true
	}
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// Break priorities, best last.
const (
	prioWord = iota
	prioLine
	prioSentence
	prioParagraph
	nPrio
)

// Split cuts text into chunks of at most budget tokens (EstimateTokens)
// each. A chunk ends, by preference, at a paragraph break (a blank line),
// then a sentence end (., !, ? or …, possibly followed by closing quotes or
// brackets, then white space and not a lower-case letter; or 。！？ without
// white space), then a line break, then a word boundary (white space, or
// between CJK characters). A paragraph or line break is taken if the chunk
// is at least half full there, a sentence end if it is a quarter full;
// otherwise the latest boundary of any kind. Text without any boundary (one over-long "word")
// is cut at a rune boundary.
//
// Each chunk after the first starts with about overlap tokens (at most
// overlap) taken from the end of the previous chunk, beginning at a
// sentence start when one gives at least half the overlap, else at a word
// start. Chunks neither start nor end with white space; together they cover
// every non-space byte of text. budget < 1 counts as 1; overlap is clamped
// to [0, budget/2]. The result depends only on the arguments; empty or
// all-white-space text gives no chunks.
func Split(text string, budget, overlap int) []Chunk {
	budget = max(budget, 1)
	overlap = min(max(overlap, 0), budget/2)
	maxQ, ovQ := 4*budget, 4*overlap

	var chunks []Chunk
	start := skipSpace(text, 0)
	prevEnd := 0
	for start < len(text) {
		end := chooseEnd(text, start, prevEnd, maxQ)
		c := text[start:end]
		chunks = append(chunks, Chunk{Index: len(chunks), Text: c, Start: start, End: end, Tokens: EstimateTokens(c)})
		next := skipSpace(text, end)
		if next >= len(text) {
			break
		}
		if ovQ > 0 {
			// The overlap, the white space after it and the next rune
			// must leave the next chunk room to get past end.
			if o := overlapStart(text, start, end, ovQ); o > start && fits(text, o, next, maxQ) {
				next = o
			}
		}
		start, prevEnd = next, end
	}
	return chunks
}

// chooseEnd returns where the chunk starting at start ends: after prevEnd,
// within maxQ quarter tokens, at the best boundary.
func chooseEnd(text string, start, prevEnd, maxQ int) int {
	var (
		best  [nPrio]int // latest candidate end per priority, 0 = none
		costs [nPrio]int // cost up to it
		last  int        // latest candidate of any priority
		q     int
		prev  rune = -1
	)
	i := start
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		c := quarters(r)
		if q+c > maxQ {
			break
		}
		// A candidate ends the chunk at i (before r).
		if i > prevEnd && i > start && prev >= 0 && !unicode.IsSpace(prev) {
			p := -1
			switch {
			case unicode.IsSpace(r):
				p = classifyRun(text, i)
			case (prev >= 0x3000 || closer(prev)) && cjkSentenceEnd(text[:i]):
				p = prioSentence
			case isCJK(prev) || isCJK(r):
				p = prioWord
			}
			if p >= 0 {
				best[p], costs[p], last = i, q, i
			}
		}
		q += c
		prev = r
		i += size
	}
	if i >= len(text) {
		return trimRightSpace(text, start, len(text))
	}
	// A paragraph break or line break is taken if the chunk is at least
	// half full there, a sentence end if a quarter full.
	for _, pick := range []struct{ prio, minQ int }{
		{prioParagraph, maxQ / 2},
		{prioSentence, maxQ / 4},
		{prioLine, maxQ / 2},
		{prioWord, 0},
	} {
		if best[pick.prio] > 0 && costs[pick.prio] >= pick.minQ {
			return best[pick.prio]
		}
	}
	if last > 0 {
		return last
	}
	// No boundary: hard split at a rune boundary.
	if e := trimRightSpace(text, start, i); e > prevEnd {
		return e
	}
	return i
}

// fits reports whether text[from:to] plus the rune at to costs at most maxQ
// quarter tokens.
func fits(text string, from, to, maxQ int) bool {
	q := 0
	for _, r := range text[from:to] {
		if q += quarters(r); q > maxQ {
			return false
		}
	}
	r, _ := utf8.DecodeRuneInString(text[to:])
	return q+quarters(r) <= maxQ
}

// classifyRun rates the white-space run starting at i as a break.
func classifyRun(text string, i int) int {
	nl := 0
	j := i
	for j < len(text) {
		r, size := utf8.DecodeRuneInString(text[j:])
		if !unicode.IsSpace(r) {
			break
		}
		if r == '\n' {
			nl++
		}
		j += size
	}
	switch {
	case nl >= 2:
		return prioParagraph
	case sentenceEnd(text[:i], text[j:]):
		return prioSentence
	case nl == 1:
		return prioLine
	}
	return prioWord
}

// closers may follow a sentence terminator.
func closer(r rune) bool {
	switch r {
	case '"', '\'', ')', ']', '’', '”', '»', '」', '』', '）', '】', '*', '_':
		return true
	}
	return false
}

// sentenceEnd reports whether before ends a sentence, given the text after
// the white space that follows.
func sentenceEnd(before, after string) bool {
	r, size := utf8.DecodeLastRuneInString(before)
	for n := 0; closer(r) && n < 3; n++ {
		before = before[:len(before)-size]
		r, size = utf8.DecodeLastRuneInString(before)
	}
	switch r {
	case '!', '?', '…', '。', '！', '？', '．':
		return true
	case '.':
		next, _ := utf8.DecodeRuneInString(after)
		return !unicode.IsLower(next) // "e.g. this" is not a sentence end
	}
	return false
}

// cjkSentenceEnd reports whether before ends with a CJK full stop (or
// exclamation/question mark), possibly followed by closing brackets.
func cjkSentenceEnd(before string) bool {
	r, size := utf8.DecodeLastRuneInString(before)
	for n := 0; closer(r) && n < 3; n++ {
		before = before[:len(before)-size]
		r, size = utf8.DecodeLastRuneInString(before)
	}
	switch r {
	case '。', '！', '？', '．':
		return true
	}
	return false
}

// overlapStart returns where the next chunk starts so that it repeats at
// most ovQ quarter tokens from the end of the chunk [start, end): the
// furthest sentence start worth at least half of that, else the furthest
// word start, else the furthest rune boundary. It returns start (no
// overlap) if nothing after start fits.
func overlapStart(text string, start, end, ovQ int) int {
	var word, sent, any int
	q := 0
	i := end
	for i > start {
		r, size := utf8.DecodeLastRuneInString(text[:i])
		q += quarters(r)
		if q > ovQ {
			break
		}
		i -= size
		if i <= start {
			break
		}
		if unicode.IsSpace(r) {
			continue
		}
		any = i
		before, _ := utf8.DecodeLastRuneInString(text[:i])
		switch {
		case unicode.IsSpace(before):
			word = i
			a := i
			for a > start {
				b, bs := utf8.DecodeLastRuneInString(text[:a])
				if !unicode.IsSpace(b) {
					break
				}
				a -= bs
			}
			if a > start && classifyRun(text, a) >= prioSentence && 2*q >= ovQ {
				sent = i
			}
		case cjkSentenceEnd(text[:i]):
			word = i
			if 2*q >= ovQ {
				sent = i
			}
		case isCJK(before) || isCJK(r):
			word = i
		}
	}
	switch {
	case sent > 0:
		return sent
	case word > 0:
		return word
	case any > 0:
		return any
	}
	return start
}

func skipSpace(text string, i int) int {
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += size
	}
	return i
}

func trimRightSpace(text string, start, end int) int {
	for end > start {
		r, size := utf8.DecodeLastRuneInString(text[start:end])
		if !unicode.IsSpace(r) {
			break
		}
		end -= size
	}
	return end
}
