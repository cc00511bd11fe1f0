package batchapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi/batchapitest"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

// BenchmarkPackOpenAI encodes and packs summary lines (the online body
// built for each) into files at the OpenAI limits.
func BenchmarkPackOpenAI(b *testing.B) {
	srv := httptest.NewServer(batchapitest.NewBatch(batchapitest.BatchOptions{}))
	defer srv.Close()
	online, err := onlineClientB(srv.URL + "/v1")
	if err != nil {
		b.Fatal(err)
	}
	bc, err := NewOpenAI(OpenAIOptions{Online: online})
	if err != nil {
		b.Fatal(err)
	}
	req := templateRequest(b, prompts.Summary, 40)
	p := NewPacker(bc.Encode, bc.Limits())
	b.ReportAllocs()
	var size int64
	for i := 0; b.Loop(); i++ {
		if f, err := p.Add(Line{CustomID: fmt.Sprintf("i%d", i), Req: req}); err != nil {
			b.Fatal(err)
		} else if f != nil {
			size += int64(len(f.Data))
		}
	}
	if f := p.Flush(); f != nil {
		size += int64(len(f.Data))
	}
	b.SetBytes(size / int64(b.N))
}

// BenchmarkResultsOpenAI reads back a completed 1,000-line batch (input,
// output and error files) and maps every line.
func BenchmarkResultsOpenAI(b *testing.B) {
	fb := batchapitest.NewBatch(batchapitest.BatchOptions{FailLine: func(i int, _ string) bool { return i%10 == 0 }})
	srv := httptest.NewServer(fb)
	defer srv.Close()
	online, err := onlineClientB(srv.URL + "/v1")
	if err != nil {
		b.Fatal(err)
	}
	bc, err := NewOpenAI(OpenAIOptions{Online: online})
	if err != nil {
		b.Fatal(err)
	}
	req := templateRequest(b, prompts.Summary, 5)
	p := NewPacker(bc.Encode, bc.Limits())
	for i := range 1000 {
		if _, err := p.Add(Line{CustomID: fmt.Sprintf("i%d", i), Req: req}); err != nil {
			b.Fatal(err)
		}
	}
	f := p.Flush()
	ctx := context.Background()
	job, err := bc.Submit(ctx, "bench", bytes.NewReader(f.Data), f.Lines())
	if err != nil {
		b.Fatal(err)
	}
	for range 3 {
		if _, err := fb.Advance(job.ID); err != nil {
			b.Fatal(err)
		}
	}
	if job, err = bc.Get(ctx, job.ID); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for r, err := range bc.Results(ctx, job) {
			if err != nil {
				b.Fatal(err)
			}
			if r.Err == nil {
				if _, err := r.Response(req); err != nil {
					b.Fatal(err)
				}
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("%d results", n)
		}
	}
}

func onlineClientB(base string) (*openai.Client, error) {
	return openai.New(openai.Options{Profile: openaiProfile(base)})
}
