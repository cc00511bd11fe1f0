package offline

import (
	"context"
	"regexp"
	"strings"
)

// correspondence is the correspondence_digest answer (version 1).
type correspondence struct {
	From        string       `json:"from"`
	To          []string     `json:"to"`
	Cc          []string     `json:"cc"`
	Date        string       `json:"date"`
	Subject     string       `json:"subject"`
	Summary     string       `json:"summary"`
	ActionItems []actionItem `json:"action_items"`
	Dates       []mailDate   `json:"dates"`
	Attachments []string     `json:"attachments"`
	Commitments []commitment `json:"commitments"`
}

type actionItem struct {
	Who    string `json:"who"`
	What   string `json:"what"`
	ByWhen string `json:"by_when"`
	Quote  string `json:"quote"`
}

type mailDate struct {
	Date  string `json:"date"`
	Event string `json:"event"`
	Quote string `json:"quote"`
}

type commitment struct {
	Party string `json:"party"`
	Term  string `json:"term"`
	Quote string `json:"quote"`
}

// Limits of the correspondence_digest schema.
const (
	maxMailItems      = 30
	maxRecipients     = 50
	maxAddressRunes   = 300
	maxMailSummary    = 2000
	maxSubjectRunes   = 500
	maxWhatRunes      = 500
	maxAttachments    = 100
	maxShortFieldRune = 100
)

var (
	// requestRE finds a sentence that asks something of someone.
	requestRE = regexp.MustCompile(`(?i)\b(please|kindly|could you|can you|would you|will you|we need|i need|you need to|you must|make sure|let me know|let us know|remember to|do not forget|don't forget|action required)\b|\?\s*$`)
	// commitRE finds a sentence that commits or agrees.
	commitRE = regexp.MustCompile(`(?i)\b(i will|we will|i'll|we'll|we agree|i agree|agreed|we accept|i accept|we confirm|i confirm|we commit|we undertake|we shall|is confirmed|are confirmed|we can offer|we offer)\b`)
	// dateRE finds a date or a deadline phrase.
	dateRE = regexp.MustCompile(`(?i)\b(\d{4}-\d{2}-\d{2}|\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?(?:,?\s+\d{4})?|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+\d{4})?|\d{1,2}/\d{1,2}/\d{2,4}|(?:next\s+|this\s+)?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|tomorrow|today|end of (?:the )?(?:day|week|month|quarter|year))\b`)
	// byRE is a deadline: "by Friday", "before 15 December", "no later than".
	byRE = regexp.MustCompile(`(?i)\b(?:by|before|until|no later than|due)\s+(?:the\s+)?$`)
	// nameRE takes the display name of "Ana Lima <ana@example.com>".
	nameRE = regexp.MustCompile(`^\s*"?([^"<]*?)"?\s*<[^>]*>\s*$`)
)

// mailMessage is what the offline client reads of an email message's text
// (the header block extract.Mail writes, then the body).
type mailMessage struct {
	from, date, subject string
	to, cc, attachments []string
	body                string
}

// readMail parses the header block at the start of docs' text: lines
// "Name: value" up to the first blank line (a first line without a colon,
// such as "Email message (correspondence)", is a title and skipped).
func readMail(docs []string) mailMessage {
	var m mailMessage
	text := strings.ReplaceAll(strings.Join(docs, "\n\n"), "\r\n", "\n")
	head, body, ok := strings.Cut(text, "\n\n")
	if !ok {
		head, body = "", text
	}
	for _, line := range strings.Split(head, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(name, " \t") {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "from":
			m.from = value
		case "to":
			m.to = splitList(value, ", ")
		case "cc":
			m.cc = splitList(value, ", ")
		case "date":
			m.date = value
		case "subject":
			m.subject = value
		case "attachments":
			m.attachments = splitList(value, ", ")
		}
	}
	m.body = body
	return m
}

func splitList(s, sep string) []string {
	out := []string{}
	for _, p := range strings.Split(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// displayName is "Ana Lima" of "Ana Lima <ana@example.com>", else the
// address as given.
func displayName(addr string) string {
	if m := nameRE.FindStringSubmatch(addr); m != nil && strings.TrimSpace(m[1]) != "" {
		return strings.TrimSpace(m[1])
	}
	return strings.TrimSpace(addr)
}

// correspondenceDigest answers the correspondence_digest schema: the
// headers as given, the body's central sentences as the summary, and
// sentences that ask (action items), commit (commitments) or name a date,
// each quoted verbatim.
func (c *Client) correspondenceDigest(ctx context.Context, docs []string) (*correspondence, error) {
	m := readMail(docs)
	sents := splitDocument(m.body)
	top, err := summarize(ctx, sents, min(c.opts.SummarySentences, 4))
	if err != nil {
		return nil, err
	}
	d := &correspondence{
		From:        truncateRunes(m.from, maxAddressRunes),
		To:          capList(m.to, maxRecipients, maxAddressRunes),
		Cc:          capList(m.cc, maxRecipients, maxAddressRunes),
		Date:        truncateRunes(m.date, maxShortFieldRune),
		Subject:     truncateRunes(m.subject, maxSubjectRunes),
		Summary:     truncateRunes(joinSentences(top), maxMailSummary),
		ActionItems: []actionItem{},
		Dates:       []mailDate{},
		Attachments: capList(m.attachments, maxAttachments, maxAddressRunes),
		Commitments: []commitment{},
	}
	who := strings.Join(namesOf(m.to), ", ")
	sender := displayName(m.from)
	for _, s := range sents {
		text := strings.Join(strings.Fields(s.text), " ")
		quote := truncateRunes(text, maxQuoteRunes)
		if len(quote) < len(text) { // a quote cut short is not verbatim
			continue
		}
		dates := dateRE.FindAllStringIndex(text, -1)
		byWhen := ""
		for _, loc := range dates {
			if byRE.MatchString(text[:loc[0]]) {
				byWhen = text[loc[0]:loc[1]]
				break
			}
		}
		if requestRE.MatchString(text) && len(d.ActionItems) < maxMailItems {
			d.ActionItems = append(d.ActionItems, actionItem{Who: truncateRunes(who, maxNameRunes),
				What: truncateRunes(text, maxWhatRunes), ByWhen: byWhen, Quote: quote})
		}
		if commitRE.MatchString(text) && len(d.Commitments) < maxMailItems {
			d.Commitments = append(d.Commitments, commitment{Party: truncateRunes(sender, maxNameRunes),
				Term: truncateRunes(text, maxWhatRunes), Quote: quote})
		}
		for _, loc := range dates {
			if len(d.Dates) >= maxMailItems {
				break
			}
			d.Dates = append(d.Dates, mailDate{Date: text[loc[0]:loc[1]], Event: truncateRunes(text, 300), Quote: quote})
		}
	}
	return d, nil
}

func namesOf(addrs []string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, displayName(a))
	}
	return out
}

func capList(list []string, n, runes int) []string {
	out := []string{}
	for _, s := range list {
		if len(out) == n {
			break
		}
		out = append(out, truncateRunes(s, runes))
	}
	return out
}
