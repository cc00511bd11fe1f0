package offline

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Ranking limits.
const (
	// maxRankSentences caps the sentences ranked (the rest are ignored);
	// 20k sentences is far beyond the 128k-token context.
	maxRankSentences = 20000
	// neighbours is how many most-similar sentences each sentence keeps as
	// graph edges (all of them for short texts).
	neighbours = 64
	// damping is PageRank's damping factor.
	damping = 0.85
	// minTokens: shorter sentences (headings, fragments) are picked only
	// when there are not enough longer ones.
	minTokens = 5
	// redundancy: a candidate this similar to an already picked sentence is
	// skipped.
	redundancy = 0.9
	// maxPreferredRunes: longer sentences are picked only when there are
	// not enough shorter ones.
	maxPreferredRunes = 350
)

var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all am an and any are as at be
		because been before being below between both but by can could did do does doing down during each
		few for from further had has have having he her here hers herself him himself his how i if in into
		is it its itself just me more most my myself no nor not now of off on once only or other our ours
		ourselves out over own same she should so some such than that the their theirs them themselves then
		there these they this those through to too under until up very was we were what when where which
		while who whom why will with would you your yours yourself yourselves shall may must also upon
		hereby herein thereof therein der die das und ist le la les et des du de el los y en que`) {
		m[w] = true
	}
	return m
}()

func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r)
}

// tokenize lower-cases words of letters and digits, drops stop words and
// one-letter words, strips a plural "s", and turns runs of CJK characters
// into character bigrams.
func tokenize(s string) []string {
	var toks []string
	var word []rune
	var cjk []rune
	flushWord := func() {
		if len(word) == 0 {
			return
		}
		w := string(word)
		word = word[:0]
		if len([]rune(w)) < 2 || stopwords[w] {
			return
		}
		if n := len(w); n > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") {
			if strings.HasSuffix(w, "ies") {
				w = w[:n-3] + "y"
			} else {
				w = w[:n-1]
			}
		}
		toks = append(toks, w)
	}
	flushCJK := func() {
		switch len(cjk) {
		case 0:
		case 1:
			toks = append(toks, string(cjk))
		default:
			for i := 0; i+1 < len(cjk); i++ {
				toks = append(toks, string(cjk[i:i+2]))
			}
		}
		cjk = cjk[:0]
	}
	for _, r := range s {
		switch {
		case isCJK(r):
			flushWord()
			cjk = append(cjk, r)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			flushCJK()
			word = append(word, unicode.ToLower(r))
		default:
			flushWord()
			flushCJK()
		}
	}
	flushWord()
	flushCJK()
	return toks
}

type termWeight struct {
	term int
	w    float64
}

// vectors returns unit-length TF-IDF vectors (terms sorted by id) and the
// token count of each sentence.
func vectors(sents []sentence) ([][]termWeight, []int) {
	ids := map[string]int{}
	var df []int
	counts := make([]map[int]int, len(sents))
	ntok := make([]int, len(sents))
	for i, s := range sents {
		toks := tokenize(s.text)
		ntok[i] = len(toks)
		c := map[int]int{}
		for _, t := range toks {
			id, ok := ids[t]
			if !ok {
				id = len(df)
				ids[t] = id
				df = append(df, 0)
			}
			if c[id] == 0 {
				df[id]++
			}
			c[id]++
		}
		counts[i] = c
	}
	n := float64(len(sents))
	vecs := make([][]termWeight, len(sents))
	for i, c := range counts {
		v := make([]termWeight, 0, len(c))
		norm := 0.0
		for id, k := range c {
			w := (1 + math.Log(float64(k))) * (math.Log((1+n)/(1+float64(df[id]))) + 1)
			v = append(v, termWeight{id, w})
		}
		sort.Slice(v, func(a, b int) bool { return v[a].term < v[b].term })
		for _, tw := range v {
			norm += tw.w * tw.w
		}
		norm = math.Sqrt(norm)
		for k := range v {
			v[k].w /= norm
		}
		vecs[i] = v
	}
	return vecs, ntok
}

func cosine(a, b []termWeight) float64 {
	s := 0.0
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i].term < b[j].term:
			i++
		case a[i].term > b[j].term:
			j++
		default:
			s += a[i].w * b[j].w
			i++
			j++
		}
	}
	return s
}

type edge struct {
	to int
	w  float64
}

// lexRank scores sentences by PageRank over their cosine-similarity graph
// (each sentence keeps its strongest neighbours), with a random jump that
// slightly favours earlier sentences. Scores sum to 1.
func lexRank(ctx context.Context, vecs [][]termWeight) ([]float64, error) {
	n := len(vecs)
	// Inverted index: term -> (sentence, weight).
	postings := map[int][]termWeight{}
	for i, v := range vecs {
		for _, tw := range v {
			postings[tw.term] = append(postings[tw.term], termWeight{i, tw.w})
		}
	}
	maxDF := n
	if n >= 50 {
		maxDF = n / 2 // very common terms barely separate sentences; skip them for speed
	}
	adj := make([][]edge, n)
	acc := make([]float64, n)
	var touched []int
	for i, v := range vecs {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("offline: rank sentences: %w", err)
			}
		}
		touched = touched[:0]
		for _, tw := range v {
			p := postings[tw.term]
			if len(p) > maxDF {
				continue
			}
			for _, o := range p {
				if o.term == i {
					continue
				}
				if acc[o.term] == 0 {
					touched = append(touched, o.term)
				}
				acc[o.term] += tw.w * o.w
			}
		}
		es := make([]edge, 0, len(touched))
		for _, j := range touched {
			if acc[j] > 1e-9 {
				es = append(es, edge{j, acc[j]})
			}
			acc[j] = 0
		}
		if len(es) > neighbours {
			slices.SortFunc(es, func(a, b edge) int {
				if a.w != b.w {
					return cmp.Compare(b.w, a.w)
				}
				return a.to - b.to
			})
			es = slices.Clip(es[:neighbours])
		}
		slices.SortFunc(es, func(a, b edge) int { return a.to - b.to })
		adj[i] = es
	}

	// Power iteration. Mass flows i -> j in proportion to w(i,j)/sum_k w(i,k);
	// sentences without edges spread theirs uniformly.
	out := make([]float64, n)
	for i, es := range adj {
		for _, e := range es {
			out[i] += e.w
		}
	}
	// The random jump favours the start of the document a little (titles,
	// parties and recitals come first): weight from 2 down to 1.
	prior := make([]float64, n)
	total := 0.0
	for i := range prior {
		prior[i] = 2
		if n > 1 {
			prior[i] -= float64(i) / float64(n-1)
		}
		total += prior[i]
	}
	for i := range prior {
		prior[i] /= total
	}
	p := make([]float64, n)
	for i := range p {
		p[i] = 1 / float64(n)
	}
	next := make([]float64, n)
	for iter := 0; iter < 200; iter++ {
		dangling := 0.0
		for i := range next {
			next[i] = 0
		}
		for i, es := range adj {
			if out[i] == 0 {
				dangling += p[i]
				continue
			}
			for _, e := range es {
				next[e.to] += p[i] * e.w / out[i]
			}
		}
		diff := 0.0
		for i := range next {
			next[i] = ((1-damping)+damping*dangling)*prior[i] + damping*next[i]
			diff += math.Abs(next[i] - p[i])
		}
		p, next = next, p
		if diff < 1e-10 {
			break
		}
	}
	return p, nil
}

// summarize returns the k most central sentences in document order.
func summarize(ctx context.Context, sents []sentence, k int) ([]sentence, error) {
	idx, err := topSentences(ctx, sents, k)
	if err != nil {
		return nil, err
	}
	out := make([]sentence, len(idx))
	for i, j := range idx {
		out[i] = sents[j]
	}
	return out, nil
}

// topSentences returns the indexes of the k most central sentences, in
// document order, skipping near-duplicates and (while possible) fragments.
func topSentences(ctx context.Context, sents []sentence, k int) ([]int, error) {
	if len(sents) > maxRankSentences {
		sents = sents[:maxRankSentences]
	}
	if k <= 0 || len(sents) == 0 {
		return nil, nil
	}
	// Rank only content: drop running headers and footers (short sentences
	// that recur, page numbers aside, three times or more) and sentences
	// without a single letter.
	keep := contentSentences(sents)
	if len(keep) == 0 {
		return nil, nil
	}
	sub := make([]sentence, len(keep))
	for i, j := range keep {
		sub[i] = sents[j]
	}
	picked, err := rankAndPick(ctx, sub, k)
	if err != nil {
		return nil, err
	}
	for i, p := range picked {
		picked[i] = keep[p]
	}
	return picked, nil
}

// contentSentences returns the indexes of the sentences worth ranking.
func contentSentences(sents []sentence) []int {
	keys := make([]string, len(sents))
	count := map[string]int{}
	for i, s := range sents {
		var b strings.Builder
		for _, r := range s.text {
			if unicode.IsLetter(r) {
				b.WriteRune(unicode.ToLower(r))
			}
		}
		keys[i] = b.String()
		count[keys[i]]++
	}
	var keep []int
	for i, s := range sents {
		if keys[i] == "" || (count[keys[i]] >= 3 && len(strings.Fields(s.text)) <= 12) {
			continue
		}
		keep = append(keep, i)
	}
	return keep
}

// rankAndPick ranks sentences and picks k: first among those of a readable
// length, then among any.
func rankAndPick(ctx context.Context, sents []sentence, k int) ([]int, error) {
	vecs, ntok := vectors(sents)
	scores, err := lexRank(ctx, vecs)
	if err != nil {
		return nil, err
	}
	order := make([]int, len(sents))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return scores[order[a]] > scores[order[b]]
	})
	var picked []int
	pick := func(allowShort bool) {
		for _, i := range order {
			if len(picked) == k {
				return
			}
			if (!allowShort && (ntok[i] < minTokens || !readable(sents[i].text))) || contains(picked, i) {
				continue
			}
			dup := false
			for _, j := range picked {
				if cosine(vecs[i], vecs[j]) >= redundancy || sents[i].text == sents[j].text {
					dup = true
					break
				}
			}
			if !dup {
				picked = append(picked, i)
			}
		}
	}
	pick(false)
	pick(true)
	sort.Ints(picked)
	return picked, nil
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// readable reports a sentence fit for a summary: not too long, not a
// fragment starting in lower case, and mostly letters (not rules or tables).
func readable(s string) bool {
	if utf8.RuneCountInString(s) > maxPreferredRunes || startsLower(s) {
		return false
	}
	letters, other := 0, 0
	for _, r := range s {
		switch {
		case unicode.IsLetter(r):
			letters++
		case !unicode.IsSpace(r):
			other++
		}
	}
	return letters >= 2*other
}

// joinSentences joins sentences with spaces (none between CJK sentences).
func joinSentences(sents []sentence) string {
	var b strings.Builder
	for i, s := range sents {
		if i > 0 {
			prev := []rune(sents[i-1].text)
			first := []rune(s.text)
			if !(isCJK(prev[len(prev)-1]) || isCJKStop(prev[len(prev)-1])) || !isCJK(first[0]) {
				b.WriteByte(' ')
			}
		}
		b.WriteString(s.text)
	}
	return b.String()
}
