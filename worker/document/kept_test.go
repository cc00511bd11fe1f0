package document_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/chunktask"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/document"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// failDigest fails the first n writes of the digest's JSON.
type failDigest struct {
	storage.Store
	n, seen atomic.Int64
}

func (f *failDigest) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	if strings.HasSuffix(key, jobs.SuffixSummaryJSON) && f.seen.Add(1) <= f.n.Load() {
		return errors.New("injected write failure")
	}
	return f.Store.Put(ctx, key, r, size, ct)
}

// keep gives it a Keeper on its output store (no Redis fallback).
func keep(it document.Item) document.Item {
	it.Keep = stage.Keeper{Out: it.Out, Batch: it.Payload.Batch, Item: it.Payload.Item}
	return it
}

// A digest whose write fails is written by the next attempt from the kept
// answer: one model call, and the outcome carries its tokens each time.
func TestDigestWriteFailureKeepsTheAnswer(t *testing.T) {
	m := &fakeModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 32768, MaxOutputTokens: 1024}}
	data := []byte("The supplier shall deliver 10 units within thirty days.\n")
	it, _ := newItem(t, m, "short.txt", "txt", data)
	fd := &failDigest{Store: it.Out}
	fd.n.Store(3) // the first attempt's three writes
	it.Out = fd
	it = keep(it)
	s := document.New(document.Config{})
	defer s.Close()
	ctx := context.Background()
	o, _, err := s.Summarize(ctx, it, data, time.Now())
	if err == nil || o.InputTokens != 100 {
		t.Fatalf("first attempt: %v, outcome %+v: want the write's error and the call's tokens", err, o)
	}
	o, _, err = s.Summarize(ctx, it, data, time.Now())
	if err != nil || len(o.Results) != 2 || o.InputTokens != 100 || fmt.Sprint(o.Kept) != "[summary]" {
		t.Fatalf("second attempt: %v, outcome %+v", err, o)
	}
	if m.calls != 1 {
		t.Errorf("%d model calls, want 1", m.calls)
	}
	if err := it.Keep.Drop(ctx, o.Kept...); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := it.Keep.Load(ctx, "summary"); ok {
		t.Error("kept answer not dropped")
	}
}

// The same for a long document's reduce.
func TestReduceWriteFailureKeepsTheAnswer(t *testing.T) {
	m := &fakeModel{prof: llm.Profile{Provider: "openai", Model: "m", ContextTokens: 4096, MaxOutputTokens: 1024}}
	var sb strings.Builder
	for i := range 200 {
		fmt.Fprintf(&sb, "Clause %d. The supplier shall deliver %d conforming units to the buyer within thirty days of each order.\n\n", i+1, 10*i+5)
	}
	data := []byte(sb.String())
	it, _ := newItem(t, m, "long.txt", "txt", data)
	fd := &failDigest{Store: it.Out}
	it.Out = fd
	it = keep(it)
	s := document.New(document.Config{})
	defer s.Close()
	ctx := context.Background()
	_, maps, err := s.Summarize(ctx, it, data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, mp := range maps {
		if err := s.Map(ctx, it, mp); err != nil {
			t.Fatal(err)
		}
	}
	mapCalls := m.calls
	fd.n.Store(3)
	rp := chunktask.ReducePayload{Item: it.Payload, Count: len(maps)}
	var o1 stage.Outcome
	if err := s.Reduce(ctx, it, rp, &o1); err == nil {
		t.Fatal("first reduce: no error")
	}
	var o2 stage.Outcome
	if err := s.Reduce(ctx, it, rp, &o2); err != nil || len(o2.Results) != 2 {
		t.Fatalf("second reduce: %v, %+v", err, o2)
	}
	if m.calls != mapCalls+1 {
		t.Errorf("%d reduce calls, want 1", m.calls-mapCalls)
	}
	if o2.InputTokens != 100*m.calls || o1.InputTokens != o2.InputTokens {
		t.Errorf("tokens %d then %d, want %d (every call, once)", o1.InputTokens, o2.InputTokens, 100*m.calls)
	}
}
