package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

// A failed result write retries the write, never the model: the model's
// answer is kept until the result is stored, every paid call is charged to
// the tenant and counted in the metrics once.

// paidModel is the offline model with a price (one unit per token) and a
// context window, counting the calls that reach it, by schema.
type paidModel struct {
	llm.Client
	context int
	mu      sync.Mutex
	calls   map[string]int
}

func (m *paidModel) Profile() llm.Profile {
	p := m.Client.Profile()
	p.Prices = llm.Prices{InputPerMillion: 1_000_000, OutputPerMillion: 1_000_000, Currency: "USD"}
	if m.context > 0 {
		p.ContextTokens = m.context
	}
	return p
}

func (m *paidModel) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	m.mu.Lock()
	if m.calls == nil {
		m.calls = map[string]int{}
	}
	if req.Schema != nil {
		m.calls[req.Schema.Name]++
	}
	m.calls[""]++
	m.mu.Unlock()
	return m.Client.Complete(ctx, req)
}

func (m *paidModel) count(schema string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[schema]
}

// failWrites fails the Puts of keys that match, the first n of them
// (n < 0: every one), and counts the attempts.
type failWrites struct {
	storage.Store
	match    func(key string) bool
	n        int
	attempts atomic.Int64
}

func (f *failWrites) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	if f.match(key) {
		if k := f.attempts.Add(1); f.n < 0 || k <= int64(f.n) {
			return fmt.Errorf("injected write failure %d of %s", k, key)
		}
	}
	return f.Store.Put(ctx, key, r, size, ct)
}

// wrapOut makes the env open outDir as wrap(store), the same one each time.
func (e *env) wrapOut(outDir string, wrap func(storage.Store) storage.Store) {
	open := e.open
	var once sync.Once
	var wrapped storage.Store
	e.open = func(ctx context.Context, loc string) (storage.Store, error) {
		st, err := open(ctx, loc)
		if err != nil || loc != outDir {
			return st, err
		}
		once.Do(func() { wrapped = wrap(st) })
		return wrapped, nil
	}
}

// tenantWorker runs a worker for tenant "acme" with model (instrumented)
// and returns the tenant's budgets.
func (e *env) tenantWorker(model llm.Client) *tenants.Budgets {
	e.t.Helper()
	cfg, err := tenants.Parse([]byte("tenants: {acme: {share: 1}}"))
	if err != nil {
		e.t.Fatal(err)
	}
	budgets := &tenants.Budgets{File: tenants.Static(cfg), Ledger: tenants.NewLedger(e.redis(), ""), Tracker: e.tracker}
	e.reg = metrics.NewRegistry()
	m := metrics.New(e.reg)
	e.runWorker(worker.Config{Model: metrics.Instrument(model, m), Concurrency: 2, Tenants: budgets, Metrics: m}, nil)
	return budgets
}

// counted sums a counter of the worker's metrics.
func (e *env) counted(name string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// checkPaidOnce checks that the entry carries the tokens and cost of the
// calls made, that the tenant was charged exactly that, and that the
// metrics counted calls requests and those tokens.
func (e *env) checkPaidOnce(b *tenants.Budgets, en jobs.Entry, calls int) {
	e.t.Helper()
	if en.InputTokens == 0 || en.Cost != float64(en.InputTokens+en.OutputTokens) {
		e.t.Errorf("entry tokens %d/%d cost %v: want the call's tokens, priced one unit each", en.InputTokens, en.OutputTokens, en.Cost)
	}
	today, _, err := b.Ledger.Spent(context.Background(), b.Config(), "acme", time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if today.Tokens != int64(en.InputTokens+en.OutputTokens) || today.Cost != en.Cost {
		e.t.Errorf("tenant charged %+v, want the entry's %d tokens and %v once", today, en.InputTokens+en.OutputTokens, en.Cost)
	}
	if got := e.counted(metrics.ModelRequestsTotal); got != float64(calls) {
		e.t.Errorf("metrics counted %v model requests, want %d", got, calls)
	}
	if got := e.counted(metrics.ModelTokensTotal); got != float64(en.InputTokens+en.OutputTokens) {
		e.t.Errorf("metrics counted %v tokens, want %d", got, en.InputTokens+en.OutputTokens)
	}
}

// noWorkLeft fails when the item's work area or its Redis fallback still
// holds anything after the batch ended.
func (e *env) noWorkLeft(out storage.Store, batch string) {
	e.t.Helper()
	ctx := context.Background()
	for info, err := range out.List(ctx, ".llamapipe/work/"+batch+"/", storage.ListOptions{Recursive: true}) {
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Errorf("work object left after the item was recorded: %s", info.Key)
	}
	keys, err := e.redis().Keys(ctx, jobs.KeptAnswersKey("", batch, "*")).Result()
	if err != nil || len(keys) > 0 {
		e.t.Errorf("kept answers left in Redis: %v, %v", keys, err)
	}
}

// A result name too long for the file system: the item fails at once with
// a reason a person can act on; the model was asked once, and that call is
// charged and counted once.
func TestResultNameTooLongFailsWithoutPayingTwice(t *testing.T) {
	for _, tc := range []struct{ name, schema string }{
		{strings.Repeat("n", 242) + ".txt", "contract_digest"},
		{strings.Repeat("c", 242) + ".jpg", "caption"},
	} {
		t.Run(tc.schema, func(t *testing.T) {
			e := newEnv(t)
			model := &paidModel{Client: offline.New(offline.Options{})}
			b := e.tenantWorker(model)
			src, outDir := t.TempDir(), t.TempDir()
			data := []byte("This lease is made between A and B. Rent is due monthly.")
			if tc.schema == "caption" {
				data = corpus(t, "images/formats/seeding_really_jpeg.png")
			}
			if err := os.WriteFile(filepath.Join(src, tc.name), data, 0o644); err != nil {
				t.Fatal(err)
			}
			res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Tenant: "acme"}})
			out, _ := e.open(context.Background(), outDir)
			en := byName(t, e.wait(res.BatchID, out, time.Minute))[tc.name]
			suffix := map[string]string{"caption": jobs.SuffixCaptionJSON, "contract_digest": jobs.SuffixSummaryJSON}[tc.schema]
			want := "cannot write result " + tc.name + suffix + ": name too long (259 chars; the limit is 255 bytes per path element)"
			if en.Status != jobs.StatusFailed || en.Error != want {
				t.Fatalf("entry %+v\nwant failed with %q", en, want)
			}
			if en.Attempts != 1 {
				t.Errorf("%d attempts: a name that cannot be written is not retried", en.Attempts)
			}
			if n := model.count(""); n != 1 {
				t.Errorf("%d model calls, want 1", n)
			}
			e.checkPaidOnce(b, en, 1)
			e.noWorkLeft(out, res.BatchID)
		})
	}
}

// refusingRedis is the tracker with a Redis that refuses kept answers
// (out of memory, say).
type refusingRedis struct{ *jobs.Tracker }

func (refusingRedis) KeepAnswer(context.Context, string, string, string, []byte) error {
	return errors.New("OOM command not allowed when used memory > 'maxmemory'")
}

// A store that fails the first writes of the result: the item ends done,
// the write retried (in the task, then in the task's retry) and the model
// asked once — for a caption, a digest in one request and a long
// document's reduce. The answer is kept in Redis (no file in the work
// area), or in the work area when Redis refuses it.
func TestResultWriteFailuresRetryTheWriteNotTheModel(t *testing.T) {
	long := strings.Repeat("The supplier shall deliver conforming goods on time and the buyer shall pay within thirty days. ", 500)
	for _, tc := range []struct {
		name, suffix string
		data         func(t *testing.T) []byte
		context      int
		redisRefuses bool // Redis refuses the answer: the work area keeps it
	}{
		{"photo.jpg", jobs.SuffixCaptionJSON, func(t *testing.T) []byte { return corpus(t, "images/formats/seeding_really_jpeg.png") }, 0, false},
		{"photo.jpg", jobs.SuffixCaptionJSON, func(t *testing.T) []byte { return corpus(t, "images/formats/seeding_really_jpeg.png") }, 0, true},
		{"lease.txt", jobs.SuffixSummaryJSON, func(*testing.T) []byte { return []byte("This lease is made between A and B. Rent is due monthly.") }, 0, false},
		{"long.txt", jobs.SuffixSummaryJSON, func(*testing.T) []byte { return []byte(long) }, 8192, false},
	} {
		label := tc.name
		if tc.redisRefuses {
			label += "/work area"
		}
		t.Run(label, func(t *testing.T) {
			e := newEnv(t)
			src, outDir := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(src, tc.name), tc.data(t), 0o644); err != nil {
				t.Fatal(err)
			}
			var fw *failWrites
			var work *failWrites
			e.wrapOut(outDir, func(st storage.Store) storage.Store {
				// 4 failures: the task's three write attempts, and the
				// first of its retry's.
				fw = &failWrites{Store: st, n: 4, match: func(k string) bool { return k == tc.name+tc.suffix }}
				// Counts the kept answers' files (n = 0: fails none).
				work = &failWrites{Store: fw, match: func(k string) bool { return strings.Contains(k, "/answer-") }}
				return work
			})
			if tc.redisRefuses {
				e.records = refusingRedis{e.tracker}
			}
			model := &paidModel{Client: offline.New(offline.Options{}), context: tc.context}
			b := e.tenantWorker(model)
			res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Tenant: "acme"}})
			out, _ := e.open(context.Background(), outDir)
			en := byName(t, e.wait(res.BatchID, out, 2*time.Minute))[tc.name]
			if en.Status != jobs.StatusDone {
				t.Fatalf("entry %+v, want done", en)
			}
			if got := fw.attempts.Load(); got != 5 {
				t.Errorf("%d writes of the result, want 5 (4 failed)", got)
			}
			if got := work.attempts.Load(); tc.redisRefuses && got == 0 {
				t.Error("Redis refused the answer, but it was never offered to the work area")
			} else if !tc.redisRefuses && got != 0 {
				t.Errorf("%d kept answers written to the work area, want none (kept in Redis)", got)
			}
			calls := model.count("")
			switch tc.name {
			case "long.txt":
				if en.Chunks < 2 || model.count("chunk_facts") != en.Chunks || model.count("contract_digest") != 1 {
					t.Errorf("%d chunks: %d map and %d reduce calls, want one per chunk and one reduce", en.Chunks, model.count("chunk_facts"), model.count("contract_digest"))
				}
			default:
				if calls != 1 {
					t.Errorf("%d model calls, want 1", calls)
				}
			}
			e.checkPaidOnce(b, en, calls)
			e.noWorkLeft(out, res.BatchID)
		})
	}
}

// answerWatch fails the first n writes of the result key, counts the
// writes and deletes of kept answers' files, and notes at each write of
// the result whether the item's answer (field name) was kept in Redis.
type answerWatch struct {
	storage.Store
	rdb         redis.UniversalClient
	result      string
	name        string
	n           int
	mu          sync.Mutex
	writes      int
	inRedis     []bool // per write of the result
	files, dels int
}

func (a *answerWatch) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if strings.Contains(key, "/answer-") {
		a.files++
	}
	if key == a.result {
		a.writes++
		keys, err := a.rdb.Keys(ctx, jobs.KeptAnswersKey("", "*", "*")).Result()
		kept := false
		for _, k := range keys {
			if ok, herr := a.rdb.HExists(ctx, k, a.name).Result(); herr == nil && ok {
				kept = true
			}
		}
		a.inRedis = append(a.inRedis, err == nil && kept)
		if a.writes <= a.n {
			return fmt.Errorf("injected write failure %d of %s", a.writes, key)
		}
	}
	return a.Store.Put(ctx, key, r, size, ct)
}

func (a *answerWatch) Delete(ctx context.Context, key string) error {
	if strings.Contains(key, "/answer-") {
		a.mu.Lock()
		a.dels++
		a.mu.Unlock()
	}
	return a.Store.Delete(ctx, key)
}

// The common path of a failed result write: the answer is kept in Redis,
// not in a file; the task's retry writes the result from it without asking
// the model, and no work-area file is created (or deleted) for it.
func TestResultWriteRetryTakesTheAnswerKeptInRedis(t *testing.T) {
	e := newEnv(t)
	src, outDir := t.TempDir(), t.TempDir()
	name := "lease.txt"
	if err := os.WriteFile(filepath.Join(src, name), []byte("This lease is made between A and B. Rent is due monthly."), 0o644); err != nil {
		t.Fatal(err)
	}
	var aw *answerWatch
	rdb := e.redis()
	e.wrapOut(outDir, func(st storage.Store) storage.Store {
		// 3 failures: every write attempt of the task's first run.
		aw = &answerWatch{Store: st, rdb: rdb, result: name + jobs.SuffixSummaryJSON, name: "summary", n: 3}
		return aw
	})
	model := &paidModel{Client: offline.New(offline.Options{})}
	b := e.tenantWorker(model)
	res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Tenant: "acme"}})
	out, _ := e.open(context.Background(), outDir)
	en := byName(t, e.wait(res.BatchID, out, 2*time.Minute))[name]
	if en.Status != jobs.StatusDone || en.Attempts != 2 {
		t.Fatalf("entry %+v, want done on the second attempt", en)
	}
	if n := model.count(""); n != 1 {
		t.Errorf("%d model calls, want 1", n)
	}
	aw.mu.Lock()
	if aw.writes != 4 || !slices.Equal(aw.inRedis, []bool{true, true, true, true}) {
		t.Errorf("%d writes of the result, answer in Redis at each: %v; want 4, kept in Redis at every one (the retry's too)", aw.writes, aw.inRedis)
	}
	if aw.files != 0 || aw.dels != 0 {
		t.Errorf("%d kept-answer files written, %d deleted; want none", aw.files, aw.dels)
	}
	aw.mu.Unlock()
	e.checkPaidOnce(b, en, 1)
	e.noWorkLeft(out, res.BatchID)
}
