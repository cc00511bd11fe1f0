package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/fingerprint"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// Kept answers are not made durable: they are in Redis, which a failover
// may lose (replication is asynchronous), or in the work area without a
// sync (storage.PutVolatile), which a power loss may take; the results
// they may not. After such a loss, a retry that finds no kept answer takes
// the answer from the result an earlier attempt stored (the model is not
// paid twice); where no result was stored either, the model is asked
// again and the result is right.

// powerLoss fails the writes of keys that match, the first n of them, and
// at the first failure deletes every kept answer so far, in the work area
// and in Redis: what a Redis failover and a power loss after the durable
// writes that went before would leave.
type powerLoss struct {
	storage.Store
	rdb      redis.UniversalClient
	match    func(key string) bool
	n        int64
	attempts atomic.Int64

	mu   sync.Mutex
	kept []string
	lost int
}

// loseRedis deletes every item's kept answers in Redis and counts them.
func (p *powerLoss) loseRedis(ctx context.Context) error {
	keys, err := p.rdb.Keys(ctx, jobs.KeptAnswersKey("", "*", "*")).Result()
	if err != nil {
		return err
	}
	for _, k := range keys {
		n, err := p.rdb.HLen(ctx, k).Result()
		if err != nil {
			return err
		}
		if err := p.rdb.Del(ctx, k).Err(); err != nil {
			return err
		}
		p.lost += int(n)
	}
	return nil
}

func (p *powerLoss) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	if strings.Contains(key, "/answer-") {
		p.mu.Lock()
		p.kept = append(p.kept, key)
		p.mu.Unlock()
	}
	if p.match(key) {
		if k := p.attempts.Add(1); k <= p.n {
			if k == 1 {
				p.mu.Lock()
				for _, kk := range p.kept {
					if err := p.Store.Delete(ctx, kk); err != nil {
						p.mu.Unlock()
						return err
					}
					p.lost++
				}
				if err := p.loseRedis(ctx); err != nil {
					p.mu.Unlock()
					return err
				}
				p.mu.Unlock()
			}
			return fmt.Errorf("injected: power lost while writing %s", key)
		}
	}
	return p.Store.Put(ctx, key, r, size, ct)
}

func TestLostKeptAnswerIsNotPaidTwice(t *testing.T) {
	lease := func(*testing.T) []byte { return []byte("This lease is made between A and B. Rent is due monthly.") }
	photo := func(t *testing.T) []byte { return corpus(t, "images/formats/seeding_really_jpeg.png") }
	for _, tc := range []struct {
		label, name, suffix string
		data                func(t *testing.T) []byte
		// fails is the key whose writes fail (all of the task's first
		// attempt's): the marker (the results were stored), the digest's
		// Markdown (its JSON was stored), or the result JSON (nothing was).
		fails string
		calls int // model calls, in all
	}{
		{"caption stored", "photo.jpg", jobs.SuffixCaptionJSON, photo, "marker", 1},
		{"digest stored", "lease.txt", jobs.SuffixSummaryJSON, lease, "marker", 1},
		{"digest JSON stored, Markdown not", "lease.txt", jobs.SuffixSummaryJSON, lease, jobs.SuffixSummaryMD, 1},
		{"nothing stored", "lease.txt", jobs.SuffixSummaryJSON, lease, jobs.SuffixSummaryJSON, 2},
	} {
		t.Run(tc.label, func(t *testing.T) {
			e := newEnv(t)
			src, outDir := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(src, tc.name), tc.data(t), 0o644); err != nil {
				t.Fatal(err)
			}
			var pl *powerLoss
			rdb := e.redis()
			e.wrapOut(outDir, func(st storage.Store) storage.Store {
				pl = &powerLoss{Store: st, rdb: rdb, n: 3, match: func(k string) bool {
					if tc.fails == "marker" {
						return strings.HasPrefix(k, fingerprint.Prefix)
					}
					return k == tc.name+tc.fails
				}}
				return pl
			})
			model := &paidModel{Client: offline.New(offline.Options{})}
			b := e.tenantWorker(model)
			res := e.ingest(ingest.Options{Spec: jobs.Spec{Sources: []string{src}, Out: outDir, Tenant: "acme"}})
			out, _ := e.open(context.Background(), outDir)
			en := byName(t, e.wait(res.BatchID, out, 2*time.Minute))[tc.name]
			if en.Status != jobs.StatusDone || en.Attempts != 2 {
				t.Fatalf("entry %+v, want done on the second attempt", en)
			}
			if pl.lost == 0 {
				t.Fatal("no kept answer was lost: the test did not simulate the power loss")
			}
			if got := model.count(""); got != tc.calls {
				t.Errorf("%d model calls, want %d", got, tc.calls)
			}
			if tc.calls == 1 {
				e.checkPaidOnce(b, en, 1)
			}
			// The results are complete and this batch's.
			task := jobs.TaskSummarize
			if tc.suffix == jobs.SuffixCaptionJSON {
				task = jobs.TaskCaption
			}
			for _, key := range jobs.ResultKeys(tc.name, task) {
				body, err := stage.ReadAll(context.Background(), out, key)
				if err != nil || len(body) == 0 {
					t.Fatalf("result %s: %v", key, err)
				}
				if strings.HasSuffix(key, ".json") {
					var r struct{ Meta stage.Meta }
					if err := json.Unmarshal(body, &r); err != nil || r.Meta.Batch != res.BatchID || r.Meta.Requests != 1 ||
						r.Meta.InputTokens != en.InputTokens || r.Meta.OutputTokens != en.OutputTokens {
						t.Errorf("result %s meta %+v (%v); want this batch's, one request, the entry's tokens %d/%d", key, r.Meta, err, en.InputTokens, en.OutputTokens)
					}
				}
			}
			e.noWorkLeft(out, res.BatchID)
		})
	}
}
