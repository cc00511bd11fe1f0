package document_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/jobs/workarea"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/document"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// recordingModel is fakeModel that also records what each map request
// carried: its text and a hash of each image.
type recordingModel struct {
	fakeModel
	mu   sync.Mutex
	maps []string
}

func (m *recordingModel) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if req.Schema.Name == "chunk_facts" {
		var sb strings.Builder
		for _, p := range req.Parts {
			sb.WriteString(p.Text)
			if p.Image != nil {
				h := sha256.Sum256(p.Image.Data)
				sb.WriteString("[image " + hex.EncodeToString(h[:8]) + "]")
			}
		}
		m.mu.Lock()
		m.maps = append(m.maps, sb.String())
		m.mu.Unlock()
	}
	return m.fakeModel.Complete(ctx, req)
}

// mapAll runs every map task and returns what they sent the model.
func mapAll(t *testing.T, s *document.Stage, it document.Item, m *recordingModel, maps []chunktask.MapPayload) []string {
	t.Helper()
	m.mu.Lock()
	m.maps = nil
	m.mu.Unlock()
	for _, mp := range maps {
		if err := s.Map(context.Background(), it, mp); err != nil {
			t.Fatal(err)
		}
	}
	return slices.Clone(m.maps)
}

// A long PDF's pages are extracted once: planning its chunks measures each
// page, the map tasks read the kept text. Pages without a text layer are
// rendered once, by the map tasks. What the model is sent is the same as
// when the map tasks extract their pages themselves (no kept text).
func TestLongPDFPagesAreExtractedOnce(t *testing.T) {
	for _, c := range []struct {
		dir, file string
		scanned   bool
	}{
		{"long", "synthetic_contract_A_enscript.pdf", false},
		{"scanned", "gen_contract_scanned150dpi.pdf", true},
	} {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(jobstest.CorpusDir(t, "pdfs", c.dir), c.file))
			if err != nil {
				t.Fatal(err)
			}
			m := &recordingModel{fakeModel: fakeModel{prof: llm.Profile{Provider: "openai", Model: "m",
				ContextTokens: 8192, MaxOutputTokens: 1024, MaxImages: 4}}}
			it, out := newItem(t, m, c.file, jobs.FilePDF, data)
			s := document.New(document.Config{})
			defer s.Close()
			ctx := context.Background()
			o, maps, err := s.Summarize(ctx, it, data, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !o.Continued || len(maps) < 2 {
				t.Fatalf("continued %v with %d maps: want a long document", o.Continued, len(maps))
			}
			got := mapAll(t, s, it, m, maps)
			extracted, rendered := s.PagesRead()
			if extracted != int64(o.Pages) {
				t.Errorf("%d pages extracted for a %d-page PDF, want one each", extracted, o.Pages)
			}
			if c.scanned && (rendered == 0 || rendered > int64(o.Pages)) || !c.scanned && rendered != 0 {
				t.Errorf("%d pages rendered of %d", rendered, o.Pages)
			}
			var ro stage.Outcome
			if err := s.Reduce(ctx, it, chunktask.ReducePayload{Item: it.Payload, Count: len(maps)}, &ro); err != nil {
				t.Fatal(err)
			}

			// The same map tasks without the kept texts extract their pages
			// again (as before): the model is sent the same.
			for _, mp := range maps {
				for _, key := range []string{workarea.MapResultKey(it.Payload.Batch, it.Payload.Item, mp.Index),
					workarea.ChunkKey(it.Payload.Batch, it.Payload.Item, mp.Index, "pages.json")} {
					if _, err := out.Stat(ctx, key); err != nil {
						t.Fatalf("work object %s: %v", key, err)
					}
					if err := out.Delete(ctx, key); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := mapAll(t, s, it, m, maps)
			if again, _ := s.PagesRead(); again == extracted {
				t.Fatal("the map tasks without kept texts extracted nothing: the comparison shows nothing")
			}
			if !slices.Equal(got, want) {
				t.Errorf("the map requests differ from those of map tasks that extract their pages")
			}

			if err := document.RemoveWork(ctx, out, it.Payload); err != nil {
				t.Fatal(err)
			}
			for info, err := range out.List(ctx, workarea.WorkPrefix(it.Payload.Batch, it.Payload.Item), storage.ListOptions{Recursive: true}) {
				if err != nil {
					t.Fatal(err)
				}
				t.Errorf("work object left: %s", info.Key)
			}
		})
	}
}

// BenchmarkLongPDFPagesExtracted reports the PDF pages extracted per page
// of input for a long corpus PDF planned and mapped as the worker does
// (target 1), and, for reference, what map tasks that extract their pages
// again cost (the behaviour before the page texts were kept: 2). Run:
// go test -run '^$' -bench LongPDFPagesExtracted -benchtime 1x ./worker/document/
func BenchmarkLongPDFPagesExtracted(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(jobstest.CorpusDir(b, "pdfs", "long"), "synthetic_contract_A_enscript.pdf"))
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		m := &recordingModel{fakeModel: fakeModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 8192, MaxOutputTokens: 1024}}}
		s := document.New(document.Config{})
		it, out := newItem(b, m, "contract.pdf", jobs.FilePDF, data)
		ctx := context.Background()
		o, maps, err := s.Summarize(ctx, it, data, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		for _, mp := range maps {
			if err := s.Map(ctx, it, mp); err != nil {
				b.Fatal(err)
			}
		}
		once, _ := s.PagesRead()
		for _, mp := range maps { // again, without the kept texts
			for _, key := range []string{workarea.MapResultKey(it.Payload.Batch, it.Payload.Item, mp.Index),
				workarea.ChunkKey(it.Payload.Batch, it.Payload.Item, mp.Index, "pages.json")} {
				if err := out.Delete(ctx, key); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Map(ctx, it, mp); err != nil {
				b.Fatal(err)
			}
		}
		all, _ := s.PagesRead()
		s.Close()
		b.ReportMetric(float64(once)/float64(o.Pages), "extracted/page")
		b.ReportMetric(float64(o.Pages+int(all-once))/float64(o.Pages), "extracted/page-without-kept-text")
		b.ReportMetric(float64(o.Pages), "pages")
	}
}
