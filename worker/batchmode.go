package worker

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
)

// Batch mode: an item whose batch uses the provider's batch API prepares
// everything as online (chunks, page images, resized images, prompts), but
// instead of calling the model it leaves its request pending and waits:
//
//   - The request line is written once under the item's output location
//     (.llamapipe/batch/<group>/<id>.line; the ID is a hash of the request,
//     so identical requests share one line and one answer). Redis keeps
//     only IDs and states. The item task returns errDeferred, which is not a
//     failure: asynq keeps it in its retry set.
//   - A collector task (one per group and minute) cuts the pending lines
//     into input files at the provider's limits and submits them; a poller
//     task per provider job, re-enqueued with a delay, follows the job.
//   - When the job is done, each answer is stored next to its line and the
//     waiting tasks are run again at once; they find the answer and go on
//     exactly as after an online call (map → reduce, caption JSON, manifest).
//     Lines the provider failed or never answered (the window expired) are
//     marked online: the waiting task then calls the model online, once.
//
// errDeferred is returned while an item waits for its batch answer.
var errDeferred = errors.New("waiting for the provider's batch job to answer")

// Request states (in the group's state hash).
const (
	bmPending  = "pending"
	bmAnswered = "answered"
	bmOnline   = "online"
	bmJob      = "job:" // + provider job ID
)

// batchMode is the worker's side of batch mode for its model.
type batchMode struct {
	w      *Worker
	client batchapi.Client
	rdb    redis.UniversalClient
	group  string
	prefix string
	// insp runs waiting tasks again (Inspector.RunTask).
	insp *asynq.Inspector
}

var groupRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func newBatchMode(w *Worker, client batchapi.Client, rdb redis.UniversalClient) *batchMode {
	prof := w.cfg.Model.Profile()
	name := prof.Preset
	if name == "" {
		name = prof.Provider
	}
	group := groupRE.ReplaceAllString(name+"-"+prof.Model, "-")
	return &batchMode{w: w, client: client, rdb: rdb, group: group, prefix: "llamapipe:bm:{" + group + "}",
		insp: asynq.NewInspector(w.cfg.Redis)}
}

func (b *batchMode) key(parts ...string) string { return b.prefix + ":" + strings.Join(parts, ":") }

// reqKey is a request's hash: state, loc (the output location its line and
// answer live in), batch (the first batch that asked) and retried.
func (b *batchMode) reqKey(id string) string { return b.key("r", id) }

// reqTTL bounds how long a request's records live: past a provider's
// window (24 h) and any wait for it, with room to spare.
const reqTTL = 10 * 24 * time.Hour

// setState sets a request's state and renews its records' lifetime.
func (b *batchMode) setState(ctx context.Context, id, state string) error {
	_, err := b.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.HSet(ctx, b.reqKey(id), "state", state)
		pl.Expire(ctx, b.reqKey(id), reqTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("batch mode: %s: %w", id, err)
	}
	return nil
}

// loc returns the output location a request's line and answer live in.
func (b *batchMode) loc(ctx context.Context, id string) (string, error) {
	loc, err := b.rdb.HGet(ctx, b.reqKey(id), "loc").Result()
	if errors.Is(err, redis.Nil) {
		return "", storage.ErrNotExist
	}
	if err != nil {
		return "", fmt.Errorf("batch mode: %s: %w", id, err)
	}
	return loc, nil
}

func (b *batchMode) lineKey(id string) string {
	return ".llamapipe/batch/" + b.group + "/" + id + ".line"
}

func (b *batchMode) answerKey(id string) string {
	return ".llamapipe/batch/" + b.group + "/" + id + ".answer.json"
}

// itemCtxKey carries the item a task works on, for model calls.
type itemCtxKey struct{}

// withItem marks ctx as working on item p (item, map and reduce tasks).
func withItem(ctx context.Context, p jobs.ItemPayload) context.Context {
	return context.WithValue(ctx, itemCtxKey{}, p)
}

// complete calls the model for the item ctx works on: online, or through
// the provider's batch API when its batch asks for that and the worker has
// one (without one, batch-mode items are answered online).
func (w *Worker) complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	p, ok := ctx.Value(itemCtxKey{}).(jobs.ItemPayload)
	queue, _ := asynq.GetQueueName(ctx)
	if !ok || w.bm == nil || !jobs.UsesBatchAPI(p.Options, queue) {
		return w.cfg.Model.Complete(ctx, req)
	}
	return w.bm.complete(ctx, req, p)
}

// complete returns the batch answer to req when there is one, calls the
// model online when the batch could not answer it, and otherwise leaves the
// request pending and returns errDeferred.
func (b *batchMode) complete(ctx context.Context, req llm.Request, p jobs.ItemPayload) (llm.Response, error) {
	// The request's ID is a hash of its line with a fixed custom ID, so the
	// same request always gets the same ID (and the same answer).
	probe, err := b.client.Encode(batchapi.Line{CustomID: "probe", Req: req})
	if err != nil {
		return llm.Response{}, err
	}
	if max := b.client.Limits().MaxLineBytes; max > 0 && int64(len(probe)) > max {
		return b.w.cfg.Model.Complete(ctx, req) // too large for a batch file
	}
	h := sha256.Sum256(append([]byte(b.group+"\x00"), probe...))
	id := "r" + hex.EncodeToString(h[:15])
	state, err := b.rdb.HGet(ctx, b.reqKey(id), "state").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return llm.Response{}, fmt.Errorf("batch mode: %w", err)
	}
	if resp, done, err := b.settled(ctx, req, id, state); done {
		return resp, err
	}
	if state == "" {
		if err := b.leave(ctx, req, id, p); err != nil {
			return llm.Response{}, err
		}
	}
	// Wait for the answer: register this task, then look again (an answer
	// stored in between would not have woken it).
	taskID, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	if taskID != "" {
		_, err := b.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
			pl.HSet(ctx, b.key("waiters", id), taskID, queue)
			pl.Expire(ctx, b.key("waiters", id), reqTTL)
			return nil
		})
		if err != nil {
			return llm.Response{}, fmt.Errorf("batch mode: %w", err)
		}
	}
	state, err = b.rdb.HGet(ctx, b.reqKey(id), "state").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return llm.Response{}, fmt.Errorf("batch mode: %w", err)
	}
	if resp, done, err := b.settled(ctx, req, id, state); done {
		return resp, err
	}
	return llm.Response{}, errDeferred
}

// leave writes a new request's line next to the item's results and makes
// it pending (once, whoever asks first), with a collector to pick it up.
func (b *batchMode) leave(ctx context.Context, req llm.Request, id string, p jobs.ItemPayload) error {
	line, err := b.client.Encode(batchapi.Line{CustomID: id, Req: req})
	if err != nil {
		return err
	}
	out, err := b.w.stores.get(ctx, p.Out)
	if err != nil {
		return err
	}
	if err := out.Put(ctx, b.lineKey(id), bytes.NewReader(line), int64(len(line)), "application/json"); err != nil {
		return fmt.Errorf("batch mode: write request: %w", err)
	}
	first, err := b.rdb.HSetNX(ctx, b.reqKey(id), "state", bmPending).Result()
	if err != nil {
		return fmt.Errorf("batch mode: %w", err)
	}
	if !first {
		return nil
	}
	_, err = b.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.HSet(ctx, b.reqKey(id), "loc", p.Out, "batch", p.Batch)
		pl.Expire(ctx, b.reqKey(id), reqTTL)
		pl.SAdd(ctx, b.key("pending"), id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("batch mode: %w", err)
	}
	return b.scheduleCollect(ctx)
}

// settled returns the answer for a request whose batch fate is known:
// answered (read back), or to be asked online.
func (b *batchMode) settled(ctx context.Context, req llm.Request, id, state string) (llm.Response, bool, error) {
	switch state {
	case bmAnswered:
		loc, err := b.loc(ctx, id)
		if err != nil {
			return llm.Response{}, true, err
		}
		st, err := b.w.stores.get(ctx, loc)
		if err != nil {
			return llm.Response{}, true, err
		}
		rc, err := st.Get(ctx, b.answerKey(id), nil)
		if errors.Is(err, storage.ErrNotExist) {
			// The answer object is gone (cleaned up): ask online.
			resp, err := b.w.cfg.Model.Complete(ctx, req)
			return resp, true, err
		}
		if err != nil {
			return llm.Response{}, true, err
		}
		defer rc.Close()
		var resp llm.Response
		if err := json.NewDecoder(io.LimitReader(rc, 16<<20)).Decode(&resp); err != nil {
			return llm.Response{}, true, fmt.Errorf("batch mode: answer of %s: %w", id, err)
		}
		resp.Batch = true
		// The online client's instrumentation never saw this call: count it
		// here, at the batch price.
		prof := b.w.cfg.Model.Profile()
		cost := prof.Prices.Cost(resp.Usage)
		if prof.Prices.BatchDiscount > 0 {
			cost *= prof.Prices.BatchDiscount
		}
		b.w.cfg.Metrics.ModelRequestFor(llm.TenantFrom(ctx), prof.Provider, cmp.Or(resp.Model, prof.Model), 0,
			resp.Usage.InputTokens, resp.Usage.OutputTokens, cost, nil)
		return resp, true, nil
	case bmOnline:
		resp, err := b.w.cfg.Model.Complete(ctx, req)
		return resp, true, err
	}
	return llm.Response{}, false, nil
}

// collectWindow groups pending requests: one collector per group and window.
func (w *Worker) collectWindow() time.Duration {
	if w.cfg.BatchCollectDelay > 0 {
		return w.cfg.BatchCollectDelay
	}
	return 30 * time.Second
}

func (b *batchMode) scheduleCollect(ctx context.Context) error {
	d := b.w.collectWindow()
	t, err := jobs.NewCollectTask(b.group, b.w.now().Truncate(d), d)
	if err != nil {
		return err
	}
	if _, err := b.w.client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("batch mode: enqueue collector: %w", err)
	}
	return nil
}

func (w *Worker) pollInterval() time.Duration {
	if w.cfg.BatchPollInterval > 0 {
		return w.cfg.BatchPollInterval
	}
	return time.Minute
}

// handleCollect cuts the pending requests into input files and submits
// them, one provider job per file.
func (w *Worker) handleCollect(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeCollect(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	b := w.bm
	if b == nil || p.Group != b.group {
		return fmt.Errorf("batch requests of %s: this worker has no batch API for them (it serves %s)", p.Group, w.cfg.Model.Profile().Model)
	}
	ids, err := b.rdb.SMembers(ctx, b.key("pending")).Result()
	if err != nil {
		return fmt.Errorf("batch collect: %w", err)
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		return nil
	}
	limits := b.client.Limits()
	if limits.MinLines > 0 && len(ids) < limits.MinLines {
		if w.cfg.BatchSmall == "wait" {
			d := 5 * time.Minute
			nt, err := jobs.NewCollectTask(b.group, w.now().Truncate(d).Add(d), d)
			if err == nil {
				_, err = w.client.EnqueueContext(ctx, nt)
			}
			if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				return err
			}
			return nil
		}
		w.log.InfoContext(ctx, "too few requests for a provider batch job: answering them online",
			"requests", len(ids), "minimum", limits.MinLines)
		return b.settle(ctx, ids, bmOnline)
	}
	lines := make(map[string][]byte, len(ids))
	packer := batchapi.NewPacker(func(l batchapi.Line) ([]byte, error) { return lines[l.CustomID], nil }, limits)
	for _, id := range ids {
		line, err := b.readLine(ctx, id)
		if errors.Is(err, storage.ErrNotExist) {
			if err := b.settle(ctx, []string{id}, bmOnline); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		lines[id] = line
		f, err := packer.Add(batchapi.Line{CustomID: id})
		if errors.Is(err, batchapi.ErrPermanent) {
			if err := b.settle(ctx, []string{id}, bmOnline); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if f != nil {
			if err := b.submit(ctx, f); err != nil {
				return err
			}
			for _, id := range f.CustomIDs {
				delete(lines, id)
			}
		}
	}
	if f := packer.Flush(); f != nil {
		return b.submit(ctx, f)
	}
	return nil
}

func (b *batchMode) readLine(ctx context.Context, id string) ([]byte, error) {
	loc, err := b.loc(ctx, id)
	if err != nil {
		return nil, err
	}
	st, err := b.w.stores.get(ctx, loc)
	if err != nil {
		return nil, err
	}
	rc, err := st.Get(ctx, b.lineKey(id), nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// submit sends one input file as a provider job and hands it to a poller.
func (b *batchMode) submit(ctx context.Context, f *batchapi.File) error {
	h := sha256.Sum256([]byte(strings.Join(f.CustomIDs, ",")))
	name := b.group + "-" + hex.EncodeToString(h[:6])
	job, err := b.client.Submit(ctx, name, bytes.NewReader(f.Data), f.Lines())
	var few *batchapi.TooFewLinesError
	if errors.As(err, &few) {
		return b.settle(ctx, f.CustomIDs, bmOnline)
	}
	if err != nil {
		return fmt.Errorf("batch submit %s (%d requests): %w", name, f.Lines(), err)
	}
	meta, _ := json.Marshal(job)
	_, err = b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		args := make([]any, len(f.CustomIDs))
		for i, id := range f.CustomIDs {
			args[i] = id
			p.HSet(ctx, b.reqKey(id), "state", bmJob+job.ID)
			p.Expire(ctx, b.reqKey(id), reqTTL)
		}
		p.SRem(ctx, b.key("pending"), args...)
		p.SAdd(ctx, b.key("job", job.ID), args...)
		p.Expire(ctx, b.key("job", job.ID), 8*24*time.Hour)
		p.Set(ctx, b.key("jobmeta", job.ID), meta, 8*24*time.Hour)
		return nil
	})
	if err != nil {
		return fmt.Errorf("batch submit %s: record job %s: %w", name, job.ID, err)
	}
	b.w.log.InfoContext(ctx, "provider batch job submitted", "job", job.ID, "requests", f.Lines(), "bytes", len(f.Data))
	return b.schedulePoll(ctx, job.ID, 0)
}

func (b *batchMode) schedulePoll(ctx context.Context, job string, attempt int) error {
	t, err := jobs.NewPollTask(jobs.PollPayload{Group: b.group, Job: job, Attempt: attempt}, b.w.pollInterval())
	if err != nil {
		return err
	}
	if _, err := b.w.client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("batch mode: enqueue poll of %s: %w", job, err)
	}
	return nil
}

// handlePoll follows a provider job: not done yet, it polls again later;
// done, it stores every answer, marks what the job did not answer for an
// online call, and runs the waiting tasks again.
func (w *Worker) handlePoll(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodePoll(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	b := w.bm
	if b == nil || p.Group != b.group {
		return fmt.Errorf("batch job %s of %s: this worker has no batch API for it", p.Job, p.Group)
	}
	ids, err := b.rdb.SMembers(ctx, b.key("job", p.Job)).Result()
	if err != nil {
		return fmt.Errorf("batch poll: %w", err)
	}
	stored, err := b.rdb.Exists(ctx, b.key("jobdone", p.Job)).Result()
	if err != nil {
		return fmt.Errorf("batch poll: %w", err)
	}
	if stored == 0 {
		job, err := b.client.Get(ctx, p.Job)
		if err != nil {
			return err
		}
		if !job.State.Done() {
			if err := b.cancelIfAbandoned(ctx, job, ids); err != nil {
				w.log.WarnContext(ctx, "cancelling a provider batch job failed", "job", p.Job, "error", err.Error())
			}
			return b.schedulePoll(ctx, p.Job, p.Attempt+1)
		}
		answered, online := 0, 0
		for r, err := range b.client.Results(ctx, job) {
			if err != nil {
				return err // read again at the next attempt: nothing is lost
			}
			if r.Err != nil {
				// Failed or never answered: asked once more, online (an
				// answer that fails online fails the item with its
				// reason) or, with BatchRetry "batch", in the next job.
				again, err := b.retryInBatch(ctx, r.CustomID)
				if err != nil {
					return err
				}
				if !again {
					online++
				}
				continue
			}
			if err := b.storeAnswer(ctx, r.CustomID, r.Resp); err != nil {
				return err
			}
			answered++
		}
		if err := b.rdb.Set(ctx, b.key("jobdone", p.Job), "1", 8*24*time.Hour).Err(); err != nil {
			return err
		}
		w.log.InfoContext(ctx, "provider batch job done", "job", p.Job, "state", job.State, "answered", answered, "online", online)
	}
	left, err := b.wake(ctx, ids)
	if err != nil {
		return err
	}
	if left > 0 && p.Attempt < 1000 {
		// Some waiting tasks were still running: wake them at the next poll.
		return b.schedulePoll(ctx, p.Job, p.Attempt+1)
	}
	return nil
}

// retryInBatch puts a request the job did not answer back among the
// pending ones when batch retries are on and it was not retried yet; else
// it marks the request for an online call. It reports whether it went back
// to the batch.
func (b *batchMode) retryInBatch(ctx context.Context, id string) (bool, error) {
	if b.w.cfg.BatchRetry == "batch" {
		n, err := b.rdb.HIncrBy(ctx, b.reqKey(id), "retried", 1).Result()
		if err != nil {
			return false, err
		}
		if n == 1 {
			if err := b.setState(ctx, id, bmPending); err != nil {
				return false, err
			}
			if err := b.rdb.SAdd(ctx, b.key("pending"), id).Err(); err != nil {
				return false, err
			}
			return true, b.scheduleCollect(ctx)
		}
	}
	return false, b.settleOne(ctx, id, bmOnline)
}

func (b *batchMode) storeAnswer(ctx context.Context, id string, resp llm.Response) error {
	loc, err := b.loc(ctx, id)
	if err != nil {
		return fmt.Errorf("batch answer %s: %w", id, err)
	}
	st, err := b.w.stores.get(ctx, loc)
	if err != nil {
		return err
	}
	data, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	if err := st.Put(ctx, b.answerKey(id), bytes.NewReader(data), int64(len(data)), "application/json"); err != nil {
		return fmt.Errorf("batch answer %s: %w", id, err)
	}
	return b.settleOne(ctx, id, bmAnswered)
}

// settleOne records a request's final state and deletes its line, which no
// job needs any more.
func (b *batchMode) settleOne(ctx context.Context, id, state string) error {
	if err := b.setState(ctx, id, state); err != nil {
		return err
	}
	if loc, err := b.loc(ctx, id); err == nil {
		if st, err := b.w.stores.get(ctx, loc); err == nil {
			if err := st.Delete(ctx, b.lineKey(id)); err != nil && !errors.Is(err, storage.ErrNotExist) {
				b.w.log.WarnContext(ctx, "batch mode: a request line was not deleted", "error", err.Error())
			}
		}
	}
	return nil
}

// settle marks requests (not submitted) for an online call and wakes their
// tasks.
func (b *batchMode) settle(ctx context.Context, ids []string, state string) error {
	for _, id := range ids {
		if err := b.settleOne(ctx, id, state); err != nil {
			return err
		}
		if err := b.rdb.SRem(ctx, b.key("pending"), id).Err(); err != nil {
			return err
		}
	}
	_, err := b.wake(ctx, ids)
	return err
}

// wake runs the tasks waiting for these requests again, and returns how
// many could not be woken yet (still running: they are tried again).
func (b *batchMode) wake(ctx context.Context, ids []string) (int, error) {
	left := 0
	for _, id := range ids {
		ws, err := b.rdb.HGetAll(ctx, b.key("waiters", id)).Result()
		if err != nil {
			return left, err
		}
		for task, queue := range ws {
			err := b.insp.RunTask(queue, task)
			if err == nil || errors.Is(err, asynq.ErrTaskNotFound) || strings.Contains(err.Error(), "already in pending") {
				b.rdb.HDel(ctx, b.key("waiters", id), task)
				continue
			}
			left++
		}
	}
	return left, nil
}

// cancelIfAbandoned cancels a provider job when every request in it belongs
// to batches that were cancelled (their items already ended as cancelled).
func (b *batchMode) cancelIfAbandoned(ctx context.Context, job batchapi.Job, ids []string) error {
	if job.State == batchapi.StateCancelling || len(ids) == 0 {
		return nil
	}
	batches := map[string]bool{}
	for start := 0; start < len(ids); start += 1000 {
		cmds, err := b.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, id := range ids[start:min(start+1000, len(ids))] {
				pl.HGet(ctx, b.reqKey(id), "batch")
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for _, c := range cmds {
			owner, _ := c.(*redis.StringCmd).Result()
			if owner == "" {
				return nil // unknown owner: keep the job
			}
			batches[owner] = true
		}
	}
	for batch := range batches {
		cancelled, err := b.w.cfg.Tracker.Cancelled(ctx, batch)
		if err != nil || !cancelled {
			return err
		}
	}
	if err := b.client.Cancel(ctx, job.ID); err != nil {
		return err
	}
	b.w.log.InfoContext(ctx, "provider batch job cancelled: its batches were cancelled", "job", job.ID)
	return nil
}
