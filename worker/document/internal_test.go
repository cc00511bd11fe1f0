package document

import (
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/stage"
)

func TestPasswordByURLKeyOrFileName(t *testing.T) {
	s := New(Config{PDFPasswords: map[string]string{"s3://b/a/x.pdf": "url", "a/y.pdf": "key", "z.pdf": "name"}})
	for ref, want := range map[jobs.Ref]string{
		{Location: "s3://b", Key: "a/x.pdf"}: "url",
		{Location: "s3://b", Key: "a/y.pdf"}: "key",
		{Location: "s3://b", Key: "c/z.pdf"}: "name",
		{Location: "s3://b", Key: "c/w.pdf"}: "",
	} {
		if got := s.password(ref); got != want {
			t.Errorf("password(%s) = %q, want %q", ref.URL(), got, want)
		}
	}
}

func TestPageSpanAndGroups(t *testing.T) {
	text := "[page 3]\nA\n\n[page 4]\nB\n\n[page 7]\nC\n"
	if f, l := pageSpan(text); f != 3 || l != 7 {
		t.Errorf("pageSpan = %d-%d, want 3-7", f, l)
	}
	if f, l := pageSpan("no markers"); f != 0 || l != 0 {
		t.Errorf("pageSpan without markers = %d-%d", f, l)
	}
	if s := stripMarkers(text); strings.Contains(s, "[page") {
		t.Errorf("markers left: %q", s)
	}
	parts := []string{strings.Repeat("a ", 400), strings.Repeat("b ", 400), strings.Repeat("c ", 4000), "d"}
	groups := groupByBudget(parts, 700)
	if len(groups) < 3 {
		t.Errorf("groupByBudget made %d groups: %v", len(groups), len(groups))
	}
	n := 0
	for _, g := range groups {
		n += len(g)
	}
	if n != len(parts) {
		t.Errorf("groups hold %d parts, want %d", n, len(parts))
	}
	pages := make([]scannedPage, 9)
	if g := groupPages(pages, 10); len(g) != 3 || len(g[0]) != 4 {
		t.Errorf("groupPages(9, 10) = %d groups", len(g))
	}
	if g := groupPages(pages, 0); len(g) != 9 {
		t.Errorf("groupPages(9, 0) = %d groups", len(g))
	}
}

func TestPlanPagesWeighsScannedPagesAsImages(t *testing.T) {
	doc := docContent{first: 11, pageTokens: []int{300, 300, 0, 0, 300}, scanned: []scannedPage{{page: 13}, {page: 14}}}
	ranges := planPages(doc, 1000, 2)
	if len(ranges) == 0 || ranges[0].First != 11 || ranges[len(ranges)-1].Last != 15 {
		t.Fatalf("ranges %+v do not cover pages 11-15", ranges)
	}
	for _, r := range ranges {
		if r.Last < r.First {
			t.Errorf("range %+v", r)
		}
	}
}

func TestRenderDigestOrdersSectionsAndSkipsEmpty(t *testing.T) {
	doc := map[string]any{
		"zeta":              "last",
		"executive_summary": "Summary.",
		"document_type":     "NDA",
		"parties":           []any{"A", map[string]any{"name": "B", "role": "buyer"}},
		"empty":             "",
		"payment_terms":     map[string]any{"due": "30 days", "none": nil},
	}
	md := renderDigest("x.pdf", doc, stage.Meta{Model: "m", Provider: "p", PromptVersion: "v1", Source: "s3://b/x.pdf"})
	order := []string{"# x.pdf", "## Document type", "## Executive summary", "## Parties", "## Payment terms", "## Zeta", "Model m (p), prompt v1"}
	at := 0
	for _, s := range order {
		i := strings.Index(md[at:], s)
		if i < 0 {
			t.Fatalf("%q missing or out of order in:\n%s", s, md)
		}
		at += i
	}
	if strings.Contains(md, "## Empty") || strings.Contains(md, "None") {
		t.Errorf("empty values rendered:\n%s", md)
	}
	if !strings.Contains(md, "- **Name**: B; **Role**: buyer") || !strings.Contains(md, "- **Due**: 30 days") {
		t.Errorf("objects not rendered inline:\n%s", md)
	}
}
