package batchmode

import (
	"context"
	"errors"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
)

// Identical requests share a line within a tenant only: the line and its
// answer live under the first item's output, which another tenant must not
// be served from.
func TestIdenticalRequestsShareALineWithinATenantOnly(t *testing.T) {
	m, _, _ := newTestMode(t, batchapi.Limits{})
	ctx := context.Background()
	req := llm.Request{Parts: []llm.Part{{Text: "summarize this", Document: true}}}
	for _, c := range []struct{ tenant, batch string }{{"alpha", "a1"}, {"alpha", "a2"}, {"beta", "b1"}, {"", "n1"}} {
		if _, err := m.For(&onlineModel{}, c.tenant, Item{Batch: c.batch, Out: "file:///out/" + c.batch}).Complete(ctx, req); !errors.Is(err, ErrDeferred) {
			t.Fatalf("%s/%s: %v, want ErrDeferred", c.tenant, c.batch, err)
		}
	}
	ids, err := m.rdb.SMembers(ctx, jobs.BatchModePendingKey(m.group)).Result()
	if err != nil || len(ids) != 3 {
		t.Fatalf("pending %v (%v), want three requests: alpha's (shared by its two batches), beta's and one without a tenant", ids, err)
	}
}
