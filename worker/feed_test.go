package worker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/feedfetch"
	"github.com/llamapipe/llamapipe/worker/finalize"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
)

// A feed's URLs are fetched by the workers: a redirect is followed, a 404
// ends in the manifest with its status, and a nightly re-run skips the
// URLs whose ETag is unchanged, before any model call.
func TestFeedFetchedAndUnchangedURLsSkipped(t *testing.T) {
	e := newEnv(t)
	img := corpus(t, "images/formats/seeding_really_jpeg.png")
	var gets atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/a.jpg", func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("ETag", `"a1"`)
		_, _ = w.Write(img)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/a.jpg", http.StatusMovedPermanently)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dir, outDir := t.TempDir(), t.TempDir()
	feed := filepath.Join(dir, "catalog.csv")
	if err := os.WriteFile(feed, []byte("sku,url,key\nA,"+srv.URL+"/a.jpg,a\nB,"+srv.URL+"/moved,b\nC,"+srv.URL+"/missing.jpg,c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.runWorker(worker.Config{Model: offline.New(offline.Options{}), Concurrency: 2,
		Feed: feedfetch.Config{AllowPrivate: true, Backoff: time.Millisecond}}, nil)
	out, _ := e.open(context.Background(), outDir)
	for run := 1; run <= 2; run++ {
		res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{"feed:" + feed}, Out: outDir}})
		m := map[string]jobs.Entry{}
		for _, en := range e.wait(res.BatchID, out, time.Minute) {
			m[en.Key] = en
		}
		want := jobs.StatusDone
		if run == 2 {
			want = jobs.StatusSkipped
		}
		for _, k := range []string{"a", "b"} {
			if en := m[k]; en.Status != want || len(en.Results) != 1 || (run == 2 && !strings.Contains(en.Error, "unchanged")) {
				t.Errorf("run %d, %s: %+v, want %s with its caption", run, k, en, want)
			}
		}
		if en := m["c"]; en.Status != jobs.StatusFailed || !strings.Contains(en.Error, "HTTP 404") {
			t.Errorf("run %d, c: %+v, want failed with HTTP 404", run, en)
		}
	}
}

// feedRecorder is the offline model, keeping every request's text parts.
type feedRecorder struct {
	*offline.Client
	mu    sync.Mutex
	texts []string
}

func (m *feedRecorder) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	m.mu.Lock()
	for _, p := range req.Parts {
		m.texts = append(m.texts, p.Text)
	}
	m.mu.Unlock()
	return m.Client.Complete(ctx, req)
}

// A feed row's SKU and name reach the caption prompt and catalog.csv.
func TestFeedRowSKUAndNameReachCaptionAndCatalog(t *testing.T) {
	e := newEnv(t)
	img := corpus(t, "images/formats/seeding_really_jpeg.png")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write(img)
	}))
	defer srv.Close()
	dir, outDir := t.TempDir(), t.TempDir()
	feed := filepath.Join(dir, "catalog.jsonl")
	rows := `{"url":"` + srv.URL + `/a.jpg","sku":"DND-042","name":"Dandelion seed print","key":"a"}` + "\n"
	if err := os.WriteFile(feed, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	model := &feedRecorder{Client: offline.New(offline.Options{})}
	e.runWorker(worker.Config{Model: model, Concurrency: 1, Feed: feedfetch.Config{AllowPrivate: true}}, nil)
	out, _ := e.open(context.Background(), outDir)
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{"feed:" + feed}, Out: outDir}})
	if es := e.wait(res.BatchID, out, time.Minute); len(es) != 1 || es[0].Status != jobs.StatusDone {
		t.Fatalf("manifest %+v", es)
	}
	model.mu.Lock()
	prompt := strings.Join(model.texts, "\n")
	model.mu.Unlock()
	if !strings.Contains(prompt, "DND-042") || !strings.Contains(prompt, "Dandelion seed print") {
		t.Errorf("caption request lacks the row's SKU and name:\n%s", prompt)
	}
	cat := readText(t, out, finalize.CatalogCSV)
	if !strings.Contains(cat, ",DND-042,Dandelion seed print,") {
		t.Errorf("catalog.csv lacks the row's SKU and name:\n%s", cat)
	}
}
