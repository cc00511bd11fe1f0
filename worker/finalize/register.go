package finalize

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/evidence"
)

// registerHeader is the contract register's CSV header; registerRow its
// JSONL line (the same columns, parties as a list).
var registerHeader = []string{"source", "key", "document_type", "parties", "effective_date", "term", "renewal",
	"auto_renewal", "renewal_notice", "termination", "payment_terms", "liability_cap", "governing_law_and_venue",
	"risky_clauses", "quotes", "quotes_found", "quotes_total", "quotes_not_found", "quotes_unverifiable", "pages",
	"summary_json", "summary_md"}

type registerParty struct {
	Name string `json:"name"`
	Role string `json:"role,omitempty"`
}

type registerRow struct {
	Source             string          `json:"source"`
	Key                string          `json:"key,omitempty"`
	DocumentType       string          `json:"document_type"`
	Parties            []registerParty `json:"parties"`
	EffectiveDate      string          `json:"effective_date"`
	Term               string          `json:"term"`
	Renewal            string          `json:"renewal"`
	AutoRenewal        *bool           `json:"auto_renewal"`
	RenewalNotice      string          `json:"renewal_notice"`
	Termination        string          `json:"termination"`
	PaymentTerms       string          `json:"payment_terms"`
	LiabilityCap       string          `json:"liability_cap"`
	GoverningLaw       string          `json:"governing_law_and_venue"`
	RiskyClauses       int             `json:"risky_clauses"`
	Quotes             string          `json:"quotes"`
	QuotesFound        int             `json:"quotes_found"`
	QuotesTotal        int             `json:"quotes_total"`
	QuotesNotFound     int             `json:"quotes_not_found"`
	QuotesUnverifiable int             `json:"quotes_unverifiable"`
	Pages              int             `json:"pages,omitempty"`
	SummaryJSON        string          `json:"summary_json"`
	SummaryMD          string          `json:"summary_md"`
}

func (r registerRow) cells() []string {
	parties := ""
	for i, p := range r.Parties {
		if i > 0 {
			parties += "; "
		}
		parties += p.Name
		if p.Role != "" {
			parties += " (" + p.Role + ")"
		}
	}
	auto := ""
	if r.AutoRenewal != nil {
		auto = text(*r.AutoRenewal)
	}
	pages := ""
	if r.Pages > 0 {
		pages = strconv.Itoa(r.Pages)
	}
	return []string{r.Source, r.Key, r.DocumentType, parties, r.EffectiveDate, r.Term, r.Renewal, auto, r.RenewalNotice,
		r.Termination, r.PaymentTerms, r.LiabilityCap, r.GoverningLaw, strconv.Itoa(r.RiskyClauses), r.Quotes,
		strconv.Itoa(r.QuotesFound), strconv.Itoa(r.QuotesTotal), strconv.Itoa(r.QuotesNotFound), strconv.Itoa(r.QuotesUnverifiable),
		pages, r.SummaryJSON, r.SummaryMD}
}

// registerRowOf reads a done document's digest into its register row.
func registerRowOf(ctx context.Context, out storage.Store, e jobs.Entry) (registerRow, evidence.Counts, error) {
	r := registerRow{Source: e.Source, Key: e.Key, Pages: e.Pages, Parties: []registerParty{},
		SummaryJSON: resultKey(e, jobs.SuffixSummaryJSON), SummaryMD: resultKey(e, jobs.SuffixSummaryMD)}
	if r.SummaryJSON == "" {
		return r, evidence.Counts{}, errNoResult
	}
	doc, err := readResult(ctx, out, r.SummaryJSON)
	if err != nil {
		return r, evidence.Counts{}, err
	}
	r.DocumentType = text(doc["document_type"])
	if ps, ok := doc["parties"].([]any); ok {
		for _, p := range ps {
			if m, ok := p.(map[string]any); ok {
				r.Parties = append(r.Parties, registerParty{Name: text(m["name"]), Role: text(m["role"])})
			}
		}
	}
	r.EffectiveDate = text(doc["effective_date"])
	r.Term = text(doc["term"])
	r.Renewal = text(doc["renewal"])
	if v1, ok := doc["term_and_renewal"]; ok { // a version 1 digest
		r.Term, r.Renewal = text(v1), text(v1)
	}
	if m, ok := doc["renewal"].(map[string]any); ok && r.Renewal != "" {
		if auto, ok := m["automatic"].(bool); ok {
			r.AutoRenewal = &auto
		}
		r.RenewalNotice = text(m["notice"])
	}
	r.Termination = text(doc["termination_rights"])
	r.PaymentTerms = text(doc["payment_terms"])
	r.LiabilityCap = text(doc["liability_caps"])
	r.GoverningLaw = text(doc["governing_law_and_venue"])
	if rc, ok := doc["risky_clauses"].([]any); ok {
		r.RiskyClauses = len(rc)
	}
	c := evidence.CountsOf(doc)
	r.QuotesFound, r.QuotesTotal, r.QuotesNotFound, r.QuotesUnverifiable = c.Verified, c.Quotes, c.Unverified, c.Unverifiable
	if c.Quotes > 0 {
		r.Quotes = c.String()
	}
	return r, c, nil
}

// failedHeader is the header of the register's and the catalog's lists of
// items without a row.
var failedHeader = []string{"source", "key", "status", "reason", "attempts"}

func failedCells(e jobs.Entry) []string {
	return []string{e.Source, e.Key, e.Status, e.Error, strconv.Itoa(e.Attempts)}
}

// quoteTally is what report.md says of a batch's quotes: the counts over
// all digests and the documents with quotes not found (the most first, at
// most maxListed), so its size does not grow with the batch.
type quoteTally struct {
	docs    int
	all     evidence.Counts
	withBad int
	worst   []docQuotes
}

type docQuotes struct {
	source string
	c      evidence.Counts
}

func (q *quoteTally) add(source string, c evidence.Counts) {
	q.docs++
	q.all.Add(c)
	if c.Unverified == 0 {
		return
	}
	q.withBad++
	q.worst = append(q.worst, docQuotes{source, c})
	sort.SliceStable(q.worst, func(i, j int) bool {
		if q.worst[i].c.Unverified != q.worst[j].c.Unverified {
			return q.worst[i].c.Unverified > q.worst[j].c.Unverified
		}
		return q.worst[i].source < q.worst[j].source
	})
	if len(q.worst) > maxListed {
		q.worst = q.worst[:maxListed]
	}
}

// registerWriter writes a summarize batch's register as its entries
// stream by.
type registerWriter struct {
	set                  exportSet
	csv, jsonl, failedTo *exportFile
	quotes               *quoteTally
}

func newRegisterWriter() (*registerWriter, error) {
	w := &registerWriter{quotes: &quoteTally{}}
	var err error
	if w.csv, err = w.set.add(newExportFile(RegisterCSV, registerHeader)); err != nil {
		return w, err
	}
	if w.jsonl, err = w.set.add(newExportFile(RegisterJSONL, nil)); err != nil {
		return w, err
	}
	w.failedTo, err = w.set.add(newExportFile(RegisterFailedCSV, failedHeader))
	return w, err
}

// add writes one document entry: a done one as a register row, another
// to the failed list with its reason.
func (w *registerWriter) add(ctx context.Context, out storage.Store, e jobs.Entry) error {
	if e.Status != jobs.StatusDone {
		return w.failedTo.row(failedCells(e))
	}
	if e.Type == jobs.FileEML {
		return w.addMessage(ctx, out, e)
	}
	r, c, err := registerRowOf(ctx, out, e)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNoResult):
		r.Quotes = "result missing"
	case err != nil:
		return fmt.Errorf("register row of %s: %w", e.Source, err)
	default:
		w.quotes.add(e.Source, c)
	}
	if err := w.csv.row(r.cells()); err != nil {
		return err
	}
	return w.jsonl.object(r)
}

// addMessage leaves a done email message out of the register, which lists
// contracts: the message's correspondence digest (its .summary.json and
// .md) has none of the register's columns, and its attachments (the
// contracts) are rows of their own. Its quotes still count in report.md.
func (w *registerWriter) addMessage(ctx context.Context, out storage.Store, e jobs.Entry) error {
	key := resultKey(e, jobs.SuffixSummaryJSON)
	if key == "" {
		return nil
	}
	doc, err := readResult(ctx, out, key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("digest of %s: %w", e.Source, err)
	}
	w.quotes.add(e.Source, evidence.CountsOf(doc))
	return nil
}
