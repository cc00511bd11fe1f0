package offline

import (
	"context"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Field limits of the prompts schemas (see prompts/schemas/*.json).
const (
	maxSummaryRunes = 3000
	maxFactRunes    = 500
	maxQuoteRunes   = 600
	maxPages        = 50
	maxFacts        = 40
	maxParties      = 20
	maxNameRunes    = 200
	maxRoleRunes    = 100
)

type party struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

type riskyClause struct {
	Clause string `json:"clause"`
	Quote  string `json:"quote"`
	Pages  []int  `json:"pages"`
}

// digest is the contract_digest answer (version 2: every fact carries a
// verbatim quote and its pages; see facts.go).
type digest struct {
	DocumentType         string        `json:"document_type"`
	Parties              []quotedParty `json:"parties"`
	EffectiveDate        factField     `json:"effective_date"`
	KeyDates             []keyDate     `json:"key_dates"`
	Term                 factField     `json:"term"`
	Renewal              renewalField  `json:"renewal"`
	TerminationRights    factField     `json:"termination_rights"`
	PaymentTerms         factField     `json:"payment_terms"`
	LiabilityCaps        factField     `json:"liability_caps"`
	Indemnities          factField     `json:"indemnities"`
	Confidentiality      factField     `json:"confidentiality"`
	GoverningLawAndVenue factField     `json:"governing_law_and_venue"`
	Obligations          []obligation  `json:"obligations"`
	RiskyClauses         []riskyClause `json:"risky_clauses"`
	ExecutiveSummary     string        `json:"executive_summary"`
}

type fact struct {
	Fact  string `json:"fact"`
	Quote string `json:"quote"`
	Pages []int  `json:"pages"`
}

// chunkFacts is the chunk_facts answer.
type chunkFacts struct {
	Facts            []fact `json:"facts"`
	DocumentTypeHint string `json:"document_type_hint"`
}

// source is what the offline client reads from a request's document parts.
type source struct {
	sents []sentence
	// head is text for the document-type and party heuristics.
	head string
	// typeHints and parties come from partial results.
	typeHints []string
	parties   []party
	// quoted are the parties of partial digests with their quotes, and
	// facts their quoted fields as sentences (quote kept verbatim).
	quoted []quotedParty
	facts  []sentence
}

// headBytes is how much text the heuristics read.
const headBytes = 4000

// readDocuments turns document parts into sentences. Partial results fed to
// the reduce step (JSON objects, each starting on its own line, possibly
// after a label such as "Partial result 2 (pages 5-9):") are read as data:
// chunk_facts contribute their facts with pages, contract_digest objects
// their executive summary, type and parties. Other parts are split into
// sentences.
func readDocuments(docs []string) *source {
	src := &source{}
	var head strings.Builder
	for _, d := range docs {
		parts := findPartials(d)
		if len(parts) == 0 {
			src.sents = append(src.sents, splitDocument(d)...)
			if head.Len() < headBytes {
				head.WriteString(d)
				head.WriteString("\n")
			}
			continue
		}
		for _, p := range parts {
			switch {
			case p.facts != nil:
				for _, f := range p.facts.Facts {
					if t := strings.Join(strings.Fields(f.Fact), " "); t != "" {
						src.sents = append(src.sents, sentence{text: t, pages: validPages(f.Pages), quote: strings.TrimSpace(f.Quote)})
						if head.Len() < headBytes {
							head.WriteString(t + "\n")
						}
					}
				}
				if h := strings.TrimSpace(p.facts.DocumentTypeHint); h != "" {
					src.typeHints = append(src.typeHints, h)
				}
			case p.digest != nil:
				for _, t := range splitSentences(p.digest.ExecutiveSummary) {
					src.sents = append(src.sents, sentence{text: t})
				}
				if h := strings.TrimSpace(p.digest.DocumentType); h != "" {
					src.typeHints = append(src.typeHints, h)
				}
				for _, q := range p.digest.Parties {
					src.parties = append(src.parties, party{Name: q.Name, Role: q.Role})
					src.quoted = append(src.quoted, q)
				}
				src.facts = append(src.facts, p.digest.quotedSentences()...)
			}
		}
	}
	src.head = cutBytes(head.String(), headBytes)
	return src
}

// documentSentences returns the sentences of document parts.
func documentSentences(docs []string) []sentence { return readDocuments(docs).sents }

type partial struct {
	facts  *chunkFacts
	digest *digest
}

// findPartials returns the chunk_facts and contract_digest JSON objects that
// start a line of s.
func findPartials(s string) []partial {
	var out []partial
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '{')
		if j < 0 {
			break
		}
		i += j
		lineStart := strings.LastIndexByte(s[:i], '\n') + 1
		if strings.TrimSpace(s[lineStart:i]) != "" {
			i++
			continue
		}
		dec := json.NewDecoder(strings.NewReader(s[i:]))
		var probe map[string]json.RawMessage
		if dec.Decode(&probe) != nil {
			i++
			continue
		}
		obj := []byte(s[i : i+int(dec.InputOffset())])
		i += int(dec.InputOffset())
		switch {
		case probe["facts"] != nil:
			var cf chunkFacts
			if json.Unmarshal(obj, &cf) == nil {
				out = append(out, partial{facts: &cf})
			}
		case probe["executive_summary"] != nil:
			var d digest
			if json.Unmarshal(obj, &d) == nil {
				out = append(out, partial{digest: &d})
			}
		}
	}
	return out
}

func validPages(p []int) []int {
	var out []int
	for _, n := range p {
		if n >= 1 && !contains(out, n) {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	if len(out) > maxPages {
		out = out[:maxPages]
	}
	return out
}

// cutBytes returns at most n bytes of s, not splitting a UTF-8 sequence.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var docTypes = []struct {
	value string
	re    *regexp.Regexp
}{
	// Specific kinds first: a "License Agreement" is a license.
	{"invoice", regexp.MustCompile(`(?i)\binvoices?\b`)},
	{"lease", regexp.MustCompile(`(?i)\b(lease|tenancy)\b`)},
	{"license", regexp.MustCompile(`(?i)\blicen[cs]e\b`)},
	{"agreement", regexp.MustCompile(`(?i)\bagreements?\b`)},
	{"contract", regexp.MustCompile(`(?i)\bcontracts?\b`)},
}

// guessDocType classifies by keywords: a specific kind (invoice, lease,
// license) named in the title (the first non-empty line) wins; otherwise the
// kind named first in the head of the document.
func guessDocType(head string) string {
	head = cutBytes(head, 2000)
	title := strings.TrimSpace(head)
	if i := strings.IndexByte(title, '\n'); i >= 0 {
		title = title[:i]
	}
	title = cutBytes(title, 200)
	for _, d := range docTypes[:3] {
		if d.re.MatchString(title) {
			return d.value
		}
	}
	best, bestAt := "document", len(head)+1
	for _, d := range docTypes {
		if loc := d.re.FindStringIndex(head); loc != nil && loc[0] < bestAt {
			best, bestAt = d.value, loc[0]
		}
	}
	return best
}

var (
	betweenRE = regexp.MustCompile(`(?is)\bbetween\s+(.{2,300}?)\s+and\s+(.{2,600}?)(?:[.;:]\s|\n\s*\n|\s+(?:dated|effective|as of|on|for|whereby)\b|$)`)
	roleRE    = regexp.MustCompile(`\(\s*(?:the\s+|hereinafter\s+(?:referred\s+to\s+as\s+)?)?["“']([^"”']{1,80})["”']\s*\)`)
	suffixRE  = regexp.MustCompile(`(?i)^,?\s*(inc|llc|ltd|l\.?l\.?c|l\.?p|gmbh|s\.?a|plc|co|corp|ag|bv|b\.v)\b\.?`)
)

// listMarkerRE matches list numbering such as "1." or "(a)" before a party.
var listMarkerRE = regexp.MustCompile(`(?m)(^|\s)(\d{1,2}[.)]|\([a-z0-9]{1,3}\))\s+`)

// guessParties finds "between X and Y" in the head of the document.
func guessParties(head string) []party {
	head = listMarkerRE.ReplaceAllString(head, "$1")
	m := betweenRE.FindStringSubmatchIndex(head)
	if m == nil {
		return []party{}
	}
	var out []party
	for g := 1; g <= 2; g++ {
		raw := head[m[2*g]:m[2*g+1]]
		// The terminator ate the period of "Ltd." or "Inc.": give it back.
		if end := m[2*g+1]; end < len(head) && head[end] == '.' && endsWithSuffix(raw) {
			raw += "."
		}
		p := parseParty(raw)
		if p.Name != "" {
			out = append(out, p)
		}
	}
	if out == nil {
		out = []party{}
	}
	return out
}

// descriptorRE starts the description after a party's name: "Acme Ltd a
// company registered in England".
var descriptorRE = regexp.MustCompile(`(?i)\s+an?\s+(?:\S+\s+){0,3}?(?:company|corporation|partnership|limited liability|entity|organi[sz]ation|individual|bank|trust)\b`)

// roleWords are defined terms that name a party's role.
var roleWords = func() map[string]bool {
	m := map[string]bool{"service provider": true}
	for _, w := range strings.Fields(`licensor licensee landlord tenant lessor lessee buyer seller purchaser vendor
		customer client supplier provider contractor subcontractor consultant employer employee
		borrower lender guarantor distributor manufacturer publisher developer reseller agent principal
		company investor shareholder party franchisor franchisee owner operator manager sponsor`) {
		m[w] = true
	}
	return m
}()

var suffixEndRE = regexp.MustCompile(`(?i)\b(inc|ltd|co|corp|llc|plc|l\.p|s\.a|b\.v)$`)

func endsWithSuffix(s string) bool { return suffixEndRE.MatchString(s) }

func parseParty(raw string) party {
	raw = strings.Join(strings.Fields(raw), " ")
	var role string
	if m := roleRE.FindStringSubmatch(raw); m != nil {
		// A defined term that is a role ("Licensor") is the role; one that
		// is a short name ("HealthGate") is not.
		if r := strings.ToLower(strings.TrimSpace(m[1])); roleWords[strings.TrimSuffix(r, "s")] {
			role = r
		}
	}
	name := raw
	if loc := descriptorRE.FindStringIndex(name); loc != nil {
		name = name[:loc[0]]
	}
	if i := strings.IndexAny(name, "(,"); i >= 0 {
		cut := i
		if name[i] == ',' {
			if m := suffixRE.FindStringIndex(name[i:]); m != nil {
				cut = i + m[1]
				if j := strings.IndexAny(name[cut:], "(,"); j >= 0 {
					cut += j
				} else {
					cut = len(name)
				}
			}
		}
		name = name[:cut]
	}
	name = strings.Trim(strings.TrimSpace(name), `"“”'`)
	if !strings.ContainsFunc(name, unicode.IsLetter) {
		return party{}
	}
	// "the Licensor, Acme" style is left as is; obvious non-names are dropped.
	if len(strings.Fields(name)) > 12 || name == "" {
		return party{}
	}
	return party{Name: truncateRunes(name, maxNameRunes), Role: truncateRunes(role, maxRoleRunes)}
}

// docType is the document type from partial results' hints, else from
// keywords.
func (src *source) docType() string {
	for _, h := range src.typeHints {
		if t := guessDocType(h); t != "document" {
			return t
		}
	}
	return guessDocType(src.head)
}

func (c *Client) contractDigest(ctx context.Context, docs []string) (*digest, error) {
	src := readDocuments(docs)
	top, err := summarize(ctx, src.sents, c.opts.SummarySentences)
	if err != nil {
		return nil, err
	}
	// Keep whole sentences within the schema's limit.
	var kept []sentence
	for _, s := range top {
		if len(kept) > 0 && runeLen(joinSentences(append(kept, s))) > maxSummaryRunes {
			break
		}
		kept = append(kept, s)
	}
	d := &digest{
		DocumentType:     src.docType(),
		Parties:          src.quotedParties(),
		KeyDates:         []keyDate{},
		Obligations:      []obligation{},
		RiskyClauses:     []riskyClause{},
		ExecutiveSummary: truncateRunes(joinSentences(kept), maxSummaryRunes),
	}
	src.fillFacts(d)
	return d, nil
}

func (c *Client) chunkFacts(ctx context.Context, docs []string) (*chunkFacts, error) {
	src := readDocuments(docs)
	k := min(c.opts.FactsPerChunk, maxFacts)
	top, err := summarize(ctx, src.sents, k)
	if err != nil {
		return nil, err
	}
	facts := make([]fact, 0, len(top))
	for _, s := range top {
		pages := s.pages
		if pages == nil {
			pages = []int{}
		}
		facts = append(facts, fact{
			Fact:  truncateRunes(s.text, maxFactRunes),
			Quote: truncateRunes(s.quoteText(), maxQuoteRunes),
			Pages: pages,
		})
	}
	hint := src.docType()
	if hint == "document" {
		hint = ""
	}
	return &chunkFacts{Facts: facts, DocumentTypeHint: hint}, nil
}

func runeLen(s string) int { return len([]rune(s)) }
