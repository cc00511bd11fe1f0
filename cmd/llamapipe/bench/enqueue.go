package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
)

// measureEnqueue enqueues synthetic caption tasks (payloads as ingest makes
// them) into a scratch queue no worker serves, from several goroutines, and
// measures the rate and Redis's used_memory growth; then the same number of
// bare asynq tasks (default options, a random payload of the same size)
// into another scratch queue, the reference. They run in enqueueRounds
// rounds, alternately (each round's first side is the other's in the next
// round); the median of the rounds' ratios counts. The queues are deleted
// afterwards.
func (b *bench) measureEnqueue(ctx context.Context) ([]row, error) {
	our, bare, err := b.enqueueRun(ctx)
	if err != nil {
		return nil, err
	}
	perTask := func(r enqueueResult) string {
		if r.perTask < 0 {
			return "n/a (Redis memory did not grow: shared with other work; use a private Redis)"
		}
		return fmt.Sprintf("%d B", r.perTask)
	}
	ratio := "n/a"
	if our.perTask > 0 && bare.perTask > 0 {
		ratio = fmt.Sprintf("%.2f× bare asynq", float64(our.perTask)/float64(bare.perTask))
	}
	return []row{
		{"enqueue rate", fmt.Sprintf("%.0f tasks/s", our.rate),
			fmt.Sprintf("%d tasks, %d goroutines, one asynq client, no workers; median of %d rounds", b.enqTasks, b.enqG, enqueueRounds)},
		{"enqueue rate, bare asynq", fmt.Sprintf("%.0f tasks/s", bare.rate), "same Redis, client, goroutines and payload size; default task options"},
		{"enqueue rate ÷ bare asynq", fmt.Sprintf("%.2f", our.ratio),
			fmt.Sprintf("target ≥ 0.9; median of %d rounds' ratios (%.2f–%.2f), the first side alternating", enqueueRounds, our.ratioMin, our.ratioMax)},
		{"Redis per queued task", perTask(our), fmt.Sprintf("used_memory growth ÷ %d pending tasks (payload %d bytes)", b.enqTasks, our.payload)},
		{"Redis per queued task, bare asynq", perTask(bare), fmt.Sprintf("same, %d-byte payload; llamapipe: %s", bare.payload, ratio)},
	}, nil
}

// enqueueRounds is how many times each side of the enqueue measure runs.
const enqueueRounds = 5

// median returns the median of xs (not empty); xs is sorted.
func median(xs []float64) float64 {
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// enqueueResult is one side of the enqueue measure.
type enqueueResult struct {
	rate float64
	// ratio is, for ours, the median of the rounds' rate ÷ bare asynq's
	// rate, ratioMin and ratioMax their range.
	ratio, ratioMin, ratioMax float64
	perTask                   int64 // -1: memory did not grow
	payload                   int
}

// enqueueRun measures llamapipe's tasks (our) and bare asynq's (bare) in
// enqueueRounds rounds: the median rate of each, the median of the rounds'
// ratios (with their range, in our), the first round's memory.
func (b *bench) enqueueRun(ctx context.Context) (our, bare enqueueResult, _ error) {
	rec := jobs.Batch{ID: ingest.NewBatchID(time.Now()), Spec: jobs.Spec{
		Sources: []string{"s3://catalog-images/inbox/2026-11-25"}, Out: "s3://catalog-images/captions/2026-11-25",
		Task: jobs.TaskAuto, Queue: jobs.QueueDefault, Options: jobs.Options{Language: "en"}}}
	ours := func(queue string) ([]*asynq.Task, error) {
		tasks := make([]*asynq.Task, b.enqTasks)
		for i := range tasks {
			key := fmt.Sprintf("products/%06d/IMG_%06d.jpg", i/1000, i)
			loc := rec.Sources[0]
			p := jobs.ItemPayload{Batch: rec.ID, Item: jobs.ItemID(loc, key),
				Source: jobs.Ref{Location: loc, Key: key, ETag: `"` + randomHex(16) + `"`, Size: 2_400_000 + int64(i)},
				Type:   "jpeg", Kind: jobs.KindImage, Task: jobs.TaskCaption, Out: rec.Out,
				ResultBase: key, Options: rec.Options, Fingerprint: randomHex(32)}
			t, err := itemtask.NewTask(rec, p, itemtask.Options{Queue: queue, MaxRetry: 5})
			if err != nil {
				return nil, err
			}
			tasks[i] = t
		}
		return tasks, nil
	}
	client := asynq.NewClient(b.svc.Redis)
	defer client.Close()
	insp := asynq.NewInspector(b.svc.Redis)
	defer insp.Close()

	type result = enqueueResult
	run := func(build func(queue string) ([]*asynq.Task, error)) (result, error) {
		queue := "llamapipe-bench-" + randomHex(4)
		defer func() { _ = insp.DeleteQueue(queue, true) }()
		tasks, err := build(queue)
		if err != nil {
			return result{}, err
		}
		r := result{perTask: -1}
		for _, t := range tasks {
			r.payload += len(t.Payload())
		}
		r.payload /= len(tasks)
		before, err := usedMemory(ctx, b.svc.Client)
		if err != nil {
			return r, err
		}
		elapsed, err := b.enqueueAll(ctx, client, tasks)
		if err != nil {
			return r, err
		}
		r.rate = float64(len(tasks)) / elapsed.Seconds()
		after, err := usedMemory(ctx, b.svc.Client)
		if err != nil {
			return r, err
		}
		if after > before {
			r.perTask = (after - before) / int64(len(tasks))
		}
		return r, nil
	}
	bareTasks := func(size int) func(string) ([]*asynq.Task, error) {
		return func(queue string) ([]*asynq.Task, error) {
			tasks := make([]*asynq.Task, b.enqTasks)
			for i := range tasks {
				tasks[i] = asynq.NewTask("bench:bare", []byte(randomHex((size + 1) / 2)[:size]), asynq.Queue(queue))
			}
			return tasks, nil
		}
	}
	// Rounds alternate which side goes first, and each round's ratio is
	// taken between its two adjacent runs, so that the machine's drift
	// (other work on it, Redis warming up) weighs on both sides alike.
	var ourRates, bareRates, ratios []float64
	for round := range enqueueRounds {
		var o, r result
		var err error
		if round%2 == 0 {
			if o, err = run(ours); err == nil {
				r, err = run(bareTasks(o.payload))
			}
		} else {
			// Bare asynq first, with round 0's payload size.
			if r, err = run(bareTasks(our.payload)); err == nil {
				o, err = run(ours)
			}
		}
		if err != nil {
			return our, bare, err
		}
		if round == 0 {
			our, bare = o, r
		}
		ourRates, bareRates, ratios = append(ourRates, o.rate), append(bareRates, r.rate), append(ratios, o.rate/r.rate)
	}
	our.rate, bare.rate = median(ourRates), median(bareRates)
	our.ratio, our.ratioMin, our.ratioMax = median(ratios), slices.Min(ratios), slices.Max(ratios)
	return our, bare, nil
}

// enqueueAll enqueues tasks from b.enqG goroutines and returns how long it
// took.
func (b *bench) enqueueAll(ctx context.Context, client *asynq.Client, tasks []*asynq.Task) (time.Duration, error) {
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
	return time.Since(start), firstErr
}

func usedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	return infoField(ctx, rdb, "used_memory")
}
