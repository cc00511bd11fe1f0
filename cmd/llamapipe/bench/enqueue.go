package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
)

// measureEnqueue enqueues synthetic caption tasks (payloads as ingest makes
// them) into a scratch queue no worker serves, from several goroutines, and
// measures the rate and Redis's used_memory growth; then deletes the queue.
func (b *bench) measureEnqueue(ctx context.Context) ([]row, error) {
	queue := "llamapipe-bench-" + randomHex(4)
	batch := ingest.NewBatchID(time.Now())
	tasks := make([]*asynq.Task, b.enqTasks)
	payloadBytes := 0
	for i := range tasks {
		key := fmt.Sprintf("products/%06d/IMG_%06d.jpg", i/1000, i)
		loc := "s3://catalog-images/inbox/2026-11-25"
		p := jobs.ItemPayload{Batch: batch, Item: jobs.ItemID(loc, key),
			Source: jobs.Ref{Location: loc, Key: key, ETag: `"` + randomHex(16) + `"`, Size: 2_400_000 + int64(i)},
			Type:   "jpeg", Kind: jobs.KindImage, Task: jobs.TaskCaption, Out: "s3://catalog-images/captions/2026-11-25",
			ResultBase: key, Options: jobs.Options{Language: "en"}, Fingerprint: randomHex(32)}
		t, err := jobs.NewItemTask(p, queue, 5)
		if err != nil {
			return nil, err
		}
		tasks[i] = t
		payloadBytes += len(t.Payload())
	}
	client := asynq.NewClient(b.svc.Redis)
	defer client.Close()
	insp := asynq.NewInspector(b.svc.Redis)
	defer insp.Close()
	defer func() { _ = insp.DeleteQueue(queue, true) }()

	before, err := usedMemory(ctx, b.svc.Client)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	errs := make(chan error, b.enqG)
	var next sync.Mutex
	idx := 0
	for range b.enqG {
		go func() {
			for {
				next.Lock()
				i := idx
				idx++
				next.Unlock()
				if i >= len(tasks) {
					errs <- nil
					return
				}
				if _, err := client.EnqueueContext(ctx, tasks[i]); err != nil {
					errs <- fmt.Errorf("enqueue: %w", err)
					return
				}
			}
		}()
	}
	var firstErr error
	for range b.enqG {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	elapsed := time.Since(start)
	if firstErr != nil {
		return nil, firstErr
	}
	after, err := usedMemory(ctx, b.svc.Client)
	if err != nil {
		return nil, err
	}
	perTask := "n/a"
	note := fmt.Sprintf("used_memory growth ÷ %d pending tasks (payload %d bytes)", b.enqTasks, payloadBytes/b.enqTasks)
	if after > before {
		perTask = fmt.Sprintf("%d B", (after-before)/int64(b.enqTasks))
	} else {
		note = "Redis memory did not grow: it is shared with other work; measure against a private Redis"
	}
	return []row{
		{"enqueue rate", fmt.Sprintf("%.0f tasks/s", float64(b.enqTasks)/elapsed.Seconds()),
			fmt.Sprintf("%d tasks, %d goroutines, one asynq client, no workers", b.enqTasks, b.enqG)},
		{"Redis per queued task", perTask, note},
	}, nil
}

func usedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO memory: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("redis INFO memory: no used_memory")
}
