package batchmode

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/batchtask"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
)

// testDB is this package's test Redis database (free in jobstest's list).
const testDB = 9

// lineClient is a batch API that only encodes lines.
type lineClient struct{ limits batchapi.Limits }

func (c lineClient) Encode(l batchapi.Line) ([]byte, error) { return json.Marshal(l) }
func (c lineClient) Limits() batchapi.Limits                { return c.limits }
func (lineClient) Submit(context.Context, string, io.Reader, int) (batchapi.Job, error) {
	return batchapi.Job{}, errors.New("not in this test")
}
func (lineClient) Get(context.Context, string) (batchapi.Job, error) {
	return batchapi.Job{}, errors.New("not in this test")
}
func (lineClient) Results(context.Context, batchapi.Job) iter.Seq2[batchapi.Result, error] {
	return func(func(batchapi.Result, error) bool) {}
}
func (lineClient) Cancel(context.Context, string) error { return nil }

// onlineModel counts online calls.
type onlineModel struct{ calls atomic.Int64 }

func (m *onlineModel) Complete(context.Context, llm.Request) (llm.Response, error) {
	m.calls.Add(1)
	return llm.Response{Text: "online"}, nil
}
func (m *onlineModel) Profile() llm.Profile { return llm.Profile{Provider: "openai", Model: "scout"} }

type enqueued struct{ types []string }

func (e *enqueued) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	e.types = append(e.types, t.Type())
	return &asynq.TaskInfo{}, nil
}

type neverCancelled struct{}

func (neverCancelled) Cancelled(context.Context, string) (bool, error)  { return false, nil }
func (neverCancelled) SetWarning(context.Context, string, string) error { return nil }

func newTestMode(t *testing.T, limits batchapi.Limits) (*Mode, *enqueued, storage.Store) {
	t.Helper()
	url, rdb := jobstest.Redis(t, testDB)
	out, err := localstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	enq := &enqueued{}
	m, err := New(Config{Batch: lineClient{limits}, Profile: (&onlineModel{}).Profile(), Redis: rdb,
		Asynq: jobstest.ConnOpt(t, url), Enqueuer: enq, Tracker: neverCancelled{},
		Open: func(context.Context, string) (storage.Store, error) { return out, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, enq, out
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without a batch API, Redis and the rest: no error")
	}
}

// A request waits for the batch: its line is written once, a collector is
// queued, and once the request is marked for an online call, the item's
// online client answers it.
func TestRequestWaitsThenGoesOnline(t *testing.T) {
	m, enq, out := newTestMode(t, batchapi.Limits{})
	online := &onlineModel{}
	c := m.For(online, "legal", Item{Batch: "b1", Out: "file:///out"})
	if c.Profile().Model != "scout" {
		t.Errorf("profile %+v: want the online client's", c.Profile())
	}
	ctx := context.Background()
	req := llm.Request{Parts: []llm.Part{{Text: "summarize this", Document: true}}}
	for range 2 {
		if _, err := c.Complete(ctx, req); !errors.Is(err, ErrDeferred) {
			t.Fatalf("first calls: %v, want ErrDeferred", err)
		}
	}
	if online.calls.Load() != 0 {
		t.Fatal("a waiting request was asked online")
	}
	if len(enq.types) != 1 || enq.types[0] != batchtask.TypeBatchCollect {
		t.Errorf("enqueued %v, want one collector", enq.types)
	}
	ids, err := m.rdb.SMembers(ctx, jobs.BatchModePendingKey(m.group)).Result()
	if err != nil || len(ids) != 1 {
		t.Fatalf("pending %v (%v), want one request", ids, err)
	}
	if _, err := out.Stat(ctx, m.lineKey(ids[0])); err != nil {
		t.Errorf("request line: %v", err)
	}
	if err := m.settle(ctx, ids, bmOnline); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Complete(ctx, req)
	if err != nil || resp.Text != "online" || online.calls.Load() != 1 {
		t.Errorf("after settle: %q %v (online calls %d), want one online answer", resp.Text, err, online.calls.Load())
	}
	if _, err := out.Stat(ctx, m.lineKey(ids[0])); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("settled request's line: %v, want it deleted", err)
	}
}

// A request too large for a batch file is asked online at once.
func TestOversizeRequestGoesOnline(t *testing.T) {
	m, enq, _ := newTestMode(t, batchapi.Limits{MaxLineBytes: 10})
	online := &onlineModel{}
	resp, err := m.For(online, "", Item{Batch: "b1", Out: "file:///out"}).Complete(context.Background(), llm.Request{System: "long enough"})
	if err != nil || resp.Text != "online" || online.calls.Load() != 1 || len(enq.types) != 0 {
		t.Errorf("%q %v, online calls %d, enqueued %v: want one online answer and nothing queued", resp.Text, err, online.calls.Load(), enq.types)
	}
}

func TestHandlersRefuseAnotherGroup(t *testing.T) {
	m, _, _ := newTestMode(t, batchapi.Limits{})
	collect, err := batchtask.NewCollectTask("other-model", time.Now(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.HandleCollect(context.Background(), collect); err == nil {
		t.Error("collector of another group ran")
	}
	poll, err := batchtask.NewPollTask(batchtask.PollPayload{Group: "other-model", Job: "j1"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.HandlePoll(context.Background(), poll); err == nil {
		t.Error("poller of another group ran")
	}
}
