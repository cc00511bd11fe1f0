package prompts

import (
	"slices"
	"sort"
)

// DigestFields is the order in which a digest's fields are shown to people
// (summary.md, the dashboard's digest page): a correspondence digest's
// fields, then a contract digest's. A field not named here follows, by
// name.
var DigestFields = []string{
	"subject", "from", "to", "cc", "date", "summary", "action_items", "dates", "attachments", "commitments", "truncated",
	"document_type", "executive_summary", "parties", "effective_date", "key_dates", "term", "renewal", "term_and_renewal",
	"termination_rights", "payment_terms", "liability_caps", "indemnities", "confidentiality", "governing_law_and_venue",
	"obligations", "risky_clauses",
}

// OrderedFields returns doc's keys in the DigestFields order, then the
// others by name, leaving out the keys in skip.
func OrderedFields(doc map[string]any, skip ...string) []string {
	keys := make([]string, 0, len(doc))
	for _, k := range DigestFields {
		if _, ok := doc[k]; ok && !slices.Contains(skip, k) {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range doc {
		if !slices.Contains(DigestFields, k) && !slices.Contains(skip, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(keys, rest...)
}
