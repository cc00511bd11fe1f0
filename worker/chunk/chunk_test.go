package chunk

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestEstimateTokens(t *testing.T) {
	tests := []struct {
		s    string
		want int
	}{
		{"", 0},
		{"a", 1},
		{"abcd", 1},
		{"abcde", 2},
		{strings.Repeat("word ", 80), 100}, // 400 ASCII characters
		{"日本語", 3},
		{"日本語。", 4},
		{"한국어", 3},
		{"éé", 1},
		{"ééé", 2},
		{"Привет", 3},
		{"ab日", 2}, // 1+1+4 quarters = 1.5 → 2
	}
	for _, tc := range tests {
		if got := EstimateTokens(tc.s); got != tc.want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
}

// check asserts the invariants every Split result must satisfy.
func check(t testing.TB, text string, budget, overlap int, chunks []Chunk) {
	t.Helper()
	budget = max(budget, 1)
	overlap = min(max(overlap, 0), budget/2)
	isSpace := func(s string) bool { return strings.TrimFunc(s, unicode.IsSpace) == "" }
	if isSpace(text) {
		if len(chunks) != 0 {
			t.Fatalf("blank text gave %d chunks", len(chunks))
		}
		return
	}
	if len(chunks) == 0 {
		t.Fatal("no chunks for non-blank text")
	}
	lead := len(text) - len(strings.TrimLeftFunc(text, unicode.IsSpace))
	trail := len(strings.TrimRightFunc(text, unicode.IsSpace))
	if chunks[0].Start != lead || chunks[len(chunks)-1].End != trail {
		t.Fatalf("chunks span [%d,%d), want [%d,%d)", chunks[0].Start, chunks[len(chunks)-1].End, lead, trail)
	}
	for i, c := range chunks {
		if c.Index != i {
			t.Fatalf("chunk %d has Index %d", i, c.Index)
		}
		if c.Start < 0 || c.End > len(text) || c.Start >= c.End || text[c.Start:c.End] != c.Text {
			t.Fatalf("chunk %d: Text does not match [%d,%d)", i, c.Start, c.End)
		}
		if c.Tokens != EstimateTokens(c.Text) || c.Tokens > budget {
			t.Fatalf("chunk %d: Tokens %d (estimate %d), budget %d", i, c.Tokens, EstimateTokens(c.Text), budget)
		}
		if r, _ := utf8.DecodeRuneInString(c.Text); unicode.IsSpace(r) {
			t.Fatalf("chunk %d starts with white space: %q", i, c.Text)
		}
		if r, _ := utf8.DecodeLastRuneInString(c.Text); unicode.IsSpace(r) {
			t.Fatalf("chunk %d ends with white space: %q", i, c.Text)
		}
		if utf8.ValidString(text) && !utf8.ValidString(c.Text) {
			t.Fatalf("chunk %d is cut inside a rune", i)
		}
		if i == 0 {
			continue
		}
		p := chunks[i-1]
		if c.Start <= p.Start || c.End <= p.End {
			t.Fatalf("chunk %d [%d,%d) does not advance past chunk %d [%d,%d)", i, c.Start, c.End, i-1, p.Start, p.End)
		}
		if c.Start > p.End && !isSpace(text[p.End:c.Start]) {
			t.Fatalf("text between chunks %d and %d is lost: %q", i-1, i, text[p.End:c.Start])
		}
		if c.Start < p.End && EstimateTokens(text[c.Start:p.End]) > overlap {
			t.Fatalf("overlap of chunks %d and %d is %d tokens, over %d", i-1, i, EstimateTokens(text[c.Start:p.End]), overlap)
		}
	}
}

var words = strings.Fields(`the supplier shall provide services to client under this agreement
including maintenance support hosting and any other deliverables described in schedule
payment terms are thirty days from invoice date late payments bear interest at rate
either party may terminate for material breach upon written notice confidentiality survives`)

// prose makes deterministic paragraphs of sentences.
func prose(seed uint64, paragraphs int) string {
	rng := rand.New(rand.NewPCG(seed, 7))
	var b strings.Builder
	for p := 0; p < paragraphs; p++ {
		if p > 0 {
			b.WriteString("\n\n")
		}
		for s, ns := 0, 2+rng.IntN(6); s < ns; s++ {
			if s > 0 {
				b.WriteByte(' ')
			}
			for w, nw := 0, 5+rng.IntN(15); w < nw; w++ {
				word := words[rng.IntN(len(words))]
				if w == 0 {
					word = strings.ToUpper(word[:1]) + word[1:]
				} else {
					b.WriteByte(' ')
				}
				b.WriteString(word)
			}
			b.WriteString([]string{".", ".", ".", "!", "?"}[rng.IntN(5)])
		}
	}
	return b.String()
}

func TestSplitProse(t *testing.T) {
	text := prose(1, 40)
	const budget, overlap = 120, 20
	chunks := Split(text, budget, overlap)
	check(t, text, budget, overlap, chunks)
	if n := EstimateTokens(text); len(chunks) < n/budget {
		t.Fatalf("%d chunks for %d tokens", len(chunks), n)
	}
	for i, c := range chunks[:len(chunks)-1] {
		// Every cut is at a sentence end (paragraphs end with one too).
		if !strings.ContainsAny(c.Text[len(c.Text)-1:], ".!?") {
			t.Errorf("chunk %d ends mid-sentence: …%q", i, c.Text[max(0, len(c.Text)-30):])
		}
		// The next chunk repeats about `overlap` tokens, from a word start.
		next := chunks[i+1]
		if next.Start >= c.End {
			t.Errorf("chunks %d and %d do not overlap", i, i+1)
			continue
		}
		if got := EstimateTokens(text[next.Start:c.End]); got < overlap/2 {
			t.Errorf("overlap of chunks %d and %d is only %d tokens", i, i+1, got)
		}
		if r, _ := utf8.DecodeLastRuneInString(text[:next.Start]); !unicode.IsSpace(r) {
			t.Errorf("chunk %d starts mid-word: %q", i+1, next.Text[:20])
		}
		// Chunks are reasonably full.
		if c.Tokens < budget/2 {
			t.Errorf("chunk %d has only %d tokens", i, c.Tokens)
		}
	}
	if !reflect.DeepEqual(chunks, Split(text, budget, overlap)) {
		t.Fatal("Split is not deterministic")
	}
}

func TestSplitPrefersParagraphs(t *testing.T) {
	// Paragraphs of ~40 tokens, budget 100: each chunk should hold whole
	// paragraphs and end where one ends, though sentence ends come later.
	var paras []string
	for i := 0; i < 12; i++ {
		paras = append(paras, strings.Repeat("Clause text goes on here. ", 6)+"End.")
	}
	text := strings.Join(paras, "\n\n")
	chunks := Split(text, 100, 0)
	check(t, text, 100, 0, chunks)
	for i, c := range chunks[:len(chunks)-1] {
		if !strings.HasPrefix(text[c.End:], "\n\n") {
			t.Errorf("chunk %d does not end at a paragraph break: …%q", i, c.Text[max(0, len(c.Text)-20):])
		}
		if i > 0 && !strings.HasSuffix(text[:c.Start], "\n\n") {
			t.Errorf("chunk %d does not start a paragraph", i)
		}
	}
}

func TestSplitLongSentence(t *testing.T) {
	// One sentence far over the budget: cut at word boundaries.
	text := strings.Repeat("unbroken clause ", 500) + "end."
	chunks := Split(text, 50, 10)
	check(t, text, 50, 10, chunks)
	for i, c := range chunks[:len(chunks)-1] {
		if !strings.HasPrefix(text[c.End:], " ") {
			t.Errorf("chunk %d cut inside a word", i)
		}
	}
	// One word far over the budget: cut at rune boundaries, chunks full.
	word := strings.Repeat("x", 1000)
	chunks = Split(word, 50, 10)
	check(t, word, 50, 10, chunks)
	for i, c := range chunks[:len(chunks)-1] {
		if c.Tokens != 50 {
			t.Errorf("hard-split chunk %d has %d tokens, want 50", i, c.Tokens)
		}
	}
}

func TestSplitCJK(t *testing.T) {
	sentence := "本合同由甲方和乙方签订，双方同意以下条款。"
	text := strings.Repeat(sentence, 30)
	chunks := Split(text, 50, 10)
	check(t, text, 50, 10, chunks)
	if len(chunks) < 30*utf8.RuneCountInString(sentence)/50 {
		t.Fatalf("only %d chunks", len(chunks))
	}
	for i, c := range chunks[:len(chunks)-1] {
		if !strings.HasSuffix(c.Text, "。") {
			t.Errorf("chunk %d does not end at a CJK full stop: %q", i, c.Text)
		}
		if chunks[i+1].Start >= c.End {
			t.Errorf("chunks %d and %d do not overlap", i, i+1)
		}
	}
	// A full stop followed by a closing quote, then more text.
	text = strings.Repeat("甲方说：“本合同自签字之日起生效。”乙方同意", 20)
	chunks = Split(text, 30, 0)
	check(t, text, 30, 0, chunks)
	for i, c := range chunks[:len(chunks)-1] {
		if !strings.HasSuffix(c.Text, "。”") {
			t.Errorf("chunk %d does not end after a quoted full stop: %q", i, c.Text)
		}
	}
	// Without punctuation: any rune boundary, never inside a rune.
	text = strings.Repeat("日本語の契約書", 100)
	check(t, text, 7, 2, Split(text, 7, 2))
	// Mixed scripts.
	text = strings.Repeat("Section 1. 甲方应当支付费用。 Payment is due. Оплата производится ежемесячно.\n", 40)
	check(t, text, 30, 8, Split(text, 30, 8))
}

func TestSplitEdgeCases(t *testing.T) {
	for _, text := range []string{"", " ", "\n\n\t  \n"} {
		if got := Split(text, 10, 2); len(got) != 0 {
			t.Errorf("Split(%q) = %v, want no chunks", text, got)
		}
	}
	got := Split("  Short text.  ", 10, 2)
	if len(got) != 1 || got[0].Text != "Short text." || got[0].Start != 2 {
		t.Errorf("short text: %+v", got)
	}
	// Degenerate arguments are clamped, not refused.
	text := prose(2, 3)
	for _, args := range [][2]int{{0, 0}, {-5, 3}, {1, 1}, {2, 100}, {10, -1}} {
		check(t, text, args[0], args[1], Split(text, args[0], args[1]))
	}
	// A white-space run longer than the budget after the overlap.
	text = "First sentence here. Second one." + strings.Repeat(" ", 200) + "Third."
	check(t, text, 10, 5, Split(text, 10, 5))
}

func FuzzSplit(f *testing.F) {
	f.Add(prose(3, 2), 20, 5)
	f.Add("日本語。テスト！\n\n한국어 문장. é", 3, 1)
	f.Add("a  \n\n  b", 1, 0)
	f.Add("\xff\xfe broken \xc3", 2, 1)
	f.Fuzz(func(t *testing.T, text string, budget, overlap int) {
		if budget > 1000 || budget < -10 || len(text) > 1<<16 {
			return
		}
		chunks := Split(text, budget, overlap)
		check(t, text, budget, overlap, chunks)
		if !reflect.DeepEqual(chunks, Split(text, budget, overlap)) {
			t.Fatal("not deterministic")
		}
	})
}
