package document_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/mailparts"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/document"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// recorder is the offline model, recording every request's system prompt
// and schema.
type recorder struct {
	*offline.Client
	mu   sync.Mutex
	reqs []llm.Request
}

func (r *recorder) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return r.Client.Complete(ctx, req)
}

func mailTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "jobs", "mailparts", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The prompt sent for an email message is the correspondence template with
// its schema; a PDF (here the one attached to a message) still gets the
// contract template.
func TestEmailGetsTheCorrespondencePromptAndPDFTheContractPrompt(t *testing.T) {
	corr, err := prompts.Load(prompts.Correspondence)
	if err != nil {
		t.Fatal(err)
	}
	contract, err := prompts.Load(prompts.Summary)
	if err != nil {
		t.Fatal(err)
	}
	msg := mailTestdata(t, "with_pdf_and_jpeg.eml")
	m, err := mailparts.Read(msg, mailparts.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var pdf []byte
	for _, p := range m.Parts {
		if strings.HasSuffix(p.Name, ".pdf") {
			if pdf, err = mailparts.Open(msg, p.Path, mailparts.Limits{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := document.New(document.Config{})
	defer s.Close()
	for _, c := range []struct {
		key    string
		typ    jobs.FileType
		data   []byte
		tmpl   *prompts.Template
		schema string
	}{
		{"msg.eml", jobs.FileEML, msg, corr, prompts.SchemaCorrespondenceDigest},
		{"agreement.pdf", jobs.FilePDF, pdf, contract, prompts.SchemaContractDigest},
	} {
		rec := &recorder{Client: offline.New(offline.Options{})}
		it, out := newItem(t, rec, c.key, c.typ, c.data)
		o, _, err := s.Summarize(context.Background(), it, c.data, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", c.key, err)
		}
		if len(rec.reqs) != 1 {
			t.Fatalf("%s: %d requests, want 1", c.key, len(rec.reqs))
		}
		req := rec.reqs[0]
		if req.System != c.tmpl.System || req.Schema == nil || req.Schema.Name != c.schema {
			t.Errorf("%s: prompt %.60q, schema %v; want %s's", c.key, req.System, req.Schema, c.tmpl.Version)
		}
		var doc map[string]any
		if err := json.Unmarshal(readKey(t, out, o.Results[0]), &doc); err != nil {
			t.Fatal(err)
		}
		if meta, _ := doc["meta"].(map[string]any); meta["prompt_version"] != c.tmpl.Version {
			t.Errorf("%s: meta %v, want prompt %s", c.key, meta, c.tmpl.Version)
		}
	}
}

// A message with a request, a deadline and a commitment: the offline
// digest has them with their quotes found, and summary.md shows the
// correspondence fields.
func TestCorrespondenceDigestOffline(t *testing.T) {
	msg := mailTestdata(t, "request_with_deadline.eml")
	s := document.New(document.Config{})
	defer s.Close()
	it, out := newItem(t, offline.New(offline.Options{}), "fees.eml", jobs.FileEML, msg)
	o, _, err := s.Summarize(context.Background(), it, msg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(readKey(t, out, o.Results[0]), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["from"] != "Ana Lima <ana@example.com>" || doc["subject"] != "Fee schedule for 2027" {
		t.Errorf("from %v subject %v", doc["from"], doc["subject"])
	}
	if cc, _ := doc["cc"].([]any); len(cc) != 1 || cc[0] != "Finance <finance@example.org>" {
		t.Errorf("cc %v", doc["cc"])
	}
	items, _ := doc["action_items"].([]any)
	commits, _ := doc["commitments"].([]any)
	if len(items) != 1 || len(commits) != 1 {
		t.Fatalf("action items %v, commitments %v: want one each", items, commits)
	}
	ai := items[0].(map[string]any)
	if ai["who"] != "Legal" || ai["by_when"] != "15 December 2026" || ai["check"] != "found" {
		t.Errorf("action item %v", ai)
	}
	if c := commits[0].(map[string]any); c["party"] != "Ana Lima" || c["check"] != "found" {
		t.Errorf("commitment %v", c)
	}
	qc, _ := doc["quote_check"].(map[string]any)
	if qc["schema"] != prompts.CorrespondenceSchemaVersion || qc["unverified"] != float64(0) {
		t.Errorf("quote_check %v", qc)
	}
	md := string(readKey(t, out, o.Results[1]))
	for _, want := range []string{"# fees.eml", "## Subject\n\nFee schedule for 2027", "## From", "## Cc", "## Action items",
		"**By when**: 15 December 2026", "## Commitments", "## Attachments\n\n- fees 2027.pdf", "✓ found in the message", "3 of 3 quotes found in the message"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
}

// A message longer than one request is read from its start, in one
// request, and the digest says so.
func TestLongEmailIsTruncatedNotMapped(t *testing.T) {
	body := "From: a@example.com\nSubject: long\n\n" + strings.Repeat("Please send the report. ", 3000)
	rec := &recorder{Client: offline.New(offline.Options{ContextTokens: 8192})}
	s := document.New(document.Config{})
	defer s.Close()
	it, out := newItem(t, rec, "long.eml", jobs.FileEML, []byte(body))
	o, maps, err := s.Summarize(context.Background(), it, []byte(body), time.Now())
	if err != nil || len(maps) != 0 || o.Continued || len(rec.reqs) != 1 {
		t.Fatalf("err %v, %d maps, continued %v, %d requests: want one request", err, len(maps), o.Continued, len(rec.reqs))
	}
	var doc map[string]any
	if err := json.Unmarshal(readKey(t, out, o.Results[0]), &doc); err != nil {
		t.Fatal(err)
	}
	if note, _ := doc[document.KeyTruncated].(string); !strings.Contains(note, "only its first") {
		t.Errorf("truncated note %v", doc[document.KeyTruncated])
	}
}
