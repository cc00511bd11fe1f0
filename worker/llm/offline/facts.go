package offline

import (
	"regexp"
	"strings"

	"github.com/llamapipe/llamapipe/worker/evidence"
)

// The fact fields of a contract_digest (version 2). The offline client
// fills them extractively: a field's value is a sentence of the document
// and its quote is the same sentence, verbatim, with its pages, so every
// quote it writes is found on its pages.
type factField struct {
	Value string `json:"value"`
	Quote string `json:"quote"`
	Pages []int  `json:"pages"`
}

type renewalField struct {
	Value     string `json:"value"`
	Automatic bool   `json:"automatic"`
	Notice    string `json:"notice"`
	Quote     string `json:"quote"`
	Pages     []int  `json:"pages"`
}

type quotedParty struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Quote string `json:"quote"`
	Pages []int  `json:"pages"`
}

type keyDate struct {
	Date  string `json:"date"`
	Event string `json:"event"`
	Quote string `json:"quote"`
	Pages []int  `json:"pages"`
}

type obligation struct {
	Party      string `json:"party"`
	Obligation string `json:"obligation"`
	Quote      string `json:"quote"`
	Pages      []int  `json:"pages"`
}

// Value limits of the fact fields (prompts/schemas/contract_digest.json
// allows up to 1500): a value is its sentence cut short, the quote carries
// the sentence whole, so that a digest stays small enough to reduce again.
const (
	maxFactValueRunes = 300
	maxObligations    = 5
)

// Keyword patterns that pick the sentence of each fact field: the first
// sentence, in document order, that matches.
var (
	effectiveRE  = regexp.MustCompile(`(?i)\beffective\s+(date|as\s+of)\b|\bdated\s+as\s+of\b|\bentered\s+into\s+(as\s+of|on)\b`)
	termRE       = regexp.MustCompile(`(?i)\b(initial\s+)?term\s+of\s+(this|the)\s+(agreement|contract|lease|license)\b|\bterm\s+(shall|will)\s+(be|commence|begin|continue)\b`)
	renewalRE    = regexp.MustCompile(`(?i)\brenew`)
	autoRenewRE  = regexp.MustCompile(`(?i)\bautomatic(ally)?\b[^.]{0,40}\brenew|\brenew\w*\s+automatic|\bauto-?renew`)
	noticeRE     = regexp.MustCompile(`(?i)\b((?:\d+|[a-z]+(?:\s*\(\d+\))?)\s+(?:days|months)['’]?\s+(?:prior\s+|advance\s+)?(?:written\s+)?notice)`)
	terminateRE  = regexp.MustCompile(`(?i)\bterminat`)
	paymentRE    = regexp.MustCompile(`(?i)\b(shall\s+pay|payable|payments?|invoices?|fees?)\b`)
	liabilityRE  = regexp.MustCompile(`(?i)\bliabilit(y|ies)\b.*\b(limit|exceed|cap)|\bin\s+no\s+event\b.*\bliable\b`)
	indemnityRE  = regexp.MustCompile(`(?i)\bindemnif`)
	confidentRE  = regexp.MustCompile(`(?i)\bconfidential`)
	lawRE        = regexp.MustCompile(`(?i)\bgoverned\s+by\b|\bgoverning\s+law\b|\blaws\s+of\s+the\s+state\b|\bexclusive\s+jurisdiction\b`)
	obligationRE = regexp.MustCompile(`(?i)\b(shall|must|agrees?\s+to)\b`)
)

// candidates are the sentences facts are picked from, in document order:
// partial digests' quoted fields first (a reduce of digests), then the
// document's or the partial facts' sentences.
func (src *source) candidates() []sentence {
	return append(append([]sentence(nil), src.facts...), src.sents...)
}

// fillFacts picks each fact field of d from the source's sentences.
func (src *source) fillFacts(d *digest) {
	cands := src.candidates()
	pick := func(re *regexp.Regexp, limit int) (factField, sentence) {
		for _, s := range cands {
			if re.MatchString(s.text) {
				return quoteField(s, limit), s
			}
		}
		return factField{Pages: []int{}}, sentence{}
	}
	d.EffectiveDate, _ = pick(effectiveRE, 100)
	d.Term, _ = pick(termRE, 1000)
	rf, rs := pick(renewalRE, 1000)
	d.Renewal = renewalField{Value: rf.Value, Quote: rf.Quote, Pages: rf.Pages}
	if rf.Value != "" {
		d.Renewal.Automatic = autoRenewRE.MatchString(rs.text)
		if m := noticeRE.FindStringSubmatch(rs.text); m != nil {
			d.Renewal.Notice = truncateRunes(m[1], 200)
		}
	}
	d.TerminationRights, _ = pick(terminateRE, maxFactValueRunes)
	d.PaymentTerms, _ = pick(paymentRE, maxFactValueRunes)
	d.LiabilityCaps, _ = pick(liabilityRE, maxFactValueRunes)
	d.Indemnities, _ = pick(indemnityRE, maxFactValueRunes)
	d.Confidentiality, _ = pick(confidentRE, maxFactValueRunes)
	d.GoverningLawAndVenue, _ = pick(lawRE, 500)
	for _, s := range cands {
		if len(d.Obligations) == maxObligations {
			break
		}
		if !obligationRE.MatchString(s.text) {
			continue
		}
		f := quoteField(s, 500)
		d.Obligations = append(d.Obligations, obligation{Party: partyIn(s.text, d.Parties), Obligation: f.Value, Quote: f.Quote, Pages: f.Pages})
	}
}

// quoteField states sentence s as a fact: its text (cut to limit runes)
// and its verbatim quote with its pages.
func quoteField(s sentence, limit int) factField {
	pages := s.pages
	if pages == nil {
		pages = []int{}
	}
	return factField{Value: truncateRunes(s.text, min(limit, maxFactValueRunes)), Quote: truncateRunes(s.quoteText(), maxQuoteRunes), Pages: pages}
}

// partyIn names the first party (by name, else by role) that sentence
// mentions; empty when none.
func partyIn(text string, parties []quotedParty) string {
	low := strings.ToLower(text)
	for _, p := range parties {
		if strings.Contains(low, strings.ToLower(p.Name)) {
			return p.Name
		}
	}
	for _, p := range parties {
		if p.Role != "" && strings.Contains(low, strings.ToLower(p.Role)) {
			return p.Name
		}
	}
	return ""
}

// quotedParties are the partial digests' parties with their quotes, then
// the parties found in the head of the document, each quoting its name
// from the sentence it is found in.
func (src *source) quotedParties() []quotedParty {
	out := []quotedParty{}
	seen := map[string]bool{}
	add := func(p quotedParty) {
		key := strings.ToLower(p.Name)
		if p.Name == "" || seen[key] || len(out) == maxParties {
			return
		}
		seen[key] = true
		p.Name, p.Role = truncateRunes(p.Name, maxNameRunes), truncateRunes(p.Role, maxRoleRunes)
		if p.Pages == nil {
			p.Pages = []int{}
		}
		out = append(out, p)
	}
	for _, p := range src.quoted {
		add(p)
	}
	cands := src.candidates()
	for _, p := range guessParties(src.head) {
		q := quotedParty{Name: p.Name, Role: p.Role}
		name := evidence.Normalize(p.Name)
		for _, s := range cands {
			if strings.Contains(evidence.Normalize(s.quoteText()), name) {
				q.Quote, q.Pages = p.Name, s.pages
				break
			}
		}
		add(q)
	}
	return out
}

// quotedSentences are a partial digest's quoted fields as sentences, so a
// further reduce level keeps their quotes and pages.
func (d *digest) quotedSentences() []sentence {
	var out []sentence
	add := func(text, quote string, pages []int) {
		if t := strings.Join(strings.Fields(text), " "); t != "" && strings.TrimSpace(quote) != "" {
			out = append(out, sentence{text: t, quote: strings.TrimSpace(quote), pages: validPages(pages)})
		}
	}
	for _, f := range []factField{d.EffectiveDate, d.Term, {Value: d.Renewal.Value, Quote: d.Renewal.Quote, Pages: d.Renewal.Pages},
		d.TerminationRights, d.PaymentTerms, d.LiabilityCaps, d.Indemnities, d.Confidentiality, d.GoverningLawAndVenue} {
		add(f.Value, f.Quote, f.Pages)
	}
	for _, o := range d.Obligations {
		add(o.Obligation, o.Quote, o.Pages)
	}
	for _, r := range d.RiskyClauses {
		add(r.Clause, r.Quote, r.Pages)
	}
	return out
}
