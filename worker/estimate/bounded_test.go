package estimate_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/storage/backends"
	"github.com/llamapipe/llamapipe/worker/estimate"
)

// A document larger than the read limit is not read whole: a text's tokens
// are scaled from its prefix by size, a PDF's pages guessed from its size
// without parsing it (this one would not parse), and the plan says so.
func TestEstimateReadsABoundedPrefix(t *testing.T) {
	dir := t.TempDir()
	line := "Clause: the tenant pays the rent monthly, in advance, to the landlord's account.\n"
	small := strings.Repeat(line, 100)                                          // read whole
	big := strings.Repeat(line, (1<<20)/len(line))                              // ~1 MiB: over the 64 KiB limit
	pdf := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{0xAB}, 200_000)...) // not a real PDF
	for name, body := range map[string][]byte{"small.txt": []byte(small), "big.txt": []byte(big), "big.pdf": pdf} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := ingest.Options{Spec: jobs.Spec{Sources: []string{dir}, Out: t.TempDir(), Task: jobs.TaskAuto}}
	const limit = 64 << 10
	p, err := makePlan(context.Background(), o, priced, estimate.Options{ReadLimit: limit}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 3 || p.Skipped != 0 || p.Partial != 2 {
		t.Fatalf("plan %+v: want 3 items, none skipped, 2 partial (big.txt by prefix, big.pdf by size)", p)
	}
	whole, err := makePlan(context.Background(), o, priced, estimate.Options{ReadLimit: 4 << 20}, -1)
	if err != nil {
		t.Fatal(err)
	}
	// With a limit over big.txt it is read whole (the PDF then fails to
	// parse, as it would in the worker).
	if whole.Partial != 0 || whole.Skipped != 1 {
		t.Fatalf("plan with a large limit %+v: want nothing partial and the fake PDF skipped", whole)
	}
	// The prefix-scaled text is within a few percent of the whole read.
	ctx := context.Background()
	st, err := backends.Open(ctx, dir, backends.Config{})
	if err != nil {
		t.Fatal(err)
	}
	one := func(name string, size, limit int64) plan.Item {
		ref := jobs.Ref{Location: st.Location(), Key: name, Size: size}
		x := estimate.New(priced, estimate.Options{ReadLimit: limit})
		typ := jobs.FileTXT
		if strings.HasSuffix(name, ".pdf") {
			typ = jobs.FilePDF
		}
		return x.Estimate(ctx, st, ref, nil, plan.Item{Kind: jobs.KindDocument, Type: typ, Size: size})
	}
	got, want := one("big.txt", int64(len(big)), limit), one("big.txt", int64(len(big)), 4<<20)
	if !got.Partial || want.Partial || got.Skip != "" {
		t.Fatalf("big.txt: %+v by prefix, %+v whole", got, want)
	}
	if d := got.TextTokens - want.TextTokens; d*50 > want.TextTokens || -d*50 > want.TextTokens {
		t.Errorf("text tokens from the prefix %d, read whole %d: want within 2%%", got.TextTokens, want.TextTokens)
	}
	if e := one("big.pdf", int64(len(pdf)), limit); !e.Partial || e.Skip != "" || e.Pages != 5 || e.TextTokens != 5*estimate.TokensPerPDFPage {
		t.Errorf("big.pdf: %+v, want 5 pages (200 kB at %d bytes a page), not parsed", e, estimate.BytesPerPDFPage)
	}
}
