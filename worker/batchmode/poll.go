package batchmode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/batchtask"
	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
)

// HandlePoll is the handler of batchtask.TypeBatchPoll: it follows a provider
// job. Not done yet, it polls again later; done, it stores every answer,
// marks what the job did not answer for an online call, and runs the
// waiting tasks again.
func (b *Mode) HandlePoll(ctx context.Context, t *asynq.Task) (err error) {
	ctx, span := b.startSpan(ctx, tracing.SpanPoll)
	defer func() { endSpan(span, err) }()
	p, err := batchtask.DecodePoll(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	span.SetAttributes(attribute.String("llamapipe.job", p.Job), attribute.Int("llamapipe.poll", p.Attempt))
	if p.Group != b.group {
		return fmt.Errorf("batch job %s of %s: this worker has no batch API for it", p.Job, p.Group)
	}
	ids, err := b.rdb.SMembers(ctx, jobs.BatchModeJobKey(b.group, p.Job)).Result()
	if err != nil {
		return fmt.Errorf("batch poll: %w", err)
	}
	b.linkRequests(ctx, span, ids)
	stored, err := b.rdb.Exists(ctx, jobs.BatchModeJobDoneKey(b.group, p.Job)).Result()
	if err != nil {
		return fmt.Errorf("batch poll: %w", err)
	}
	if stored == 0 {
		job, err := b.client.Get(ctx, p.Job)
		if err != nil {
			return b.pollFailed(ctx, p, ids, err)
		}
		if !job.State.Done() {
			if err := b.cancelIfAbandoned(ctx, job, ids); err != nil {
				b.log.WarnContext(ctx, "cancelling a provider batch job failed", "job", p.Job, "error", err.Error())
			}
			return b.schedulePoll(ctx, p.Job, p.Attempt+1)
		}
		answered, online := 0, 0
		for r, err := range b.client.Results(ctx, job) {
			if err != nil {
				// Read again at the next attempt: nothing is lost.
				return b.pollFailed(ctx, p, ids, err)
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
		if err := b.rdb.Set(ctx, jobs.BatchModeJobDoneKey(b.group, p.Job), "1", jobs.BatchModeJobTTL).Err(); err != nil {
			return err
		}
		if err := b.recovered(ctx, "poll:"+p.Job, ids); err != nil {
			return err
		}
		b.log.InfoContext(ctx, "provider batch job done", "job", p.Job, "state", job.State, "answered", answered, "online", online)
		span.AddEvent("batch.done", trace.WithAttributes(attribute.String("llamapipe.state", string(job.State)),
			attribute.Int("llamapipe.answered", answered), attribute.Int("llamapipe.online", online)))
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

// pollFailed waits out a failing status or results call of a provider
// job: the job's batches show it, the job is polled again, and after
// Config.OnlineAfter or Config.OnlineAfterFailures its requests go online
// (the job is cancelled, as far as the provider still takes a call).
func (b *Mode) pollFailed(ctx context.Context, p batchtask.PollPayload, ids []string, cause error) error {
	what := "poll:" + p.Job
	online, err := b.failed(ctx, what, ids, fmt.Errorf("batch job %s: %w", p.Job, cause))
	if err != nil {
		return err
	}
	if !online {
		return b.schedulePoll(ctx, p.Job, p.Attempt+1)
	}
	if err := b.client.Cancel(ctx, p.Job); err != nil {
		b.log.WarnContext(ctx, "cancelling a failing provider batch job failed", "job", p.Job, "error", err.Error())
	}
	b.log.WarnContext(ctx, "provider batch job still failing: answering its requests online", "job", p.Job, "requests", len(ids))
	for _, id := range ids {
		state, err := b.rdb.HGet(ctx, jobs.BatchModeRequestKey(b.group, id), "state").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("batch poll: %w", err)
		}
		if state != bmAnswered { // answers stored already are kept
			if err := b.settleOne(ctx, id, bmOnline); err != nil {
				return err
			}
		}
	}
	if err := b.rdb.Set(ctx, jobs.BatchModeJobDoneKey(b.group, p.Job), "1", jobs.BatchModeJobTTL).Err(); err != nil {
		return err
	}
	if left, err := b.wake(ctx, ids); err != nil || left == 0 {
		return err
	}
	return b.schedulePoll(ctx, p.Job, p.Attempt+1)
}

// retryInBatch puts a request the job did not answer back among the
// pending ones when batch retries are on and it was not retried yet; else
// it marks the request for an online call. It reports whether it went back
// to the batch.
func (b *Mode) retryInBatch(ctx context.Context, id string) (bool, error) {
	if b.retry == "batch" {
		n, err := b.rdb.HIncrBy(ctx, jobs.BatchModeRequestKey(b.group, id), "retried", 1).Result()
		if err != nil {
			return false, err
		}
		if n == 1 {
			if err := b.setState(ctx, id, bmPending); err != nil {
				return false, err
			}
			if err := b.rdb.SAdd(ctx, jobs.BatchModePendingKey(b.group), id).Err(); err != nil {
				return false, err
			}
			return true, b.scheduleCollect(ctx)
		}
	}
	return false, b.settleOne(ctx, id, bmOnline)
}

func (b *Mode) storeAnswer(ctx context.Context, id string, resp llm.Response) error {
	loc, err := b.loc(ctx, id)
	if err != nil {
		return fmt.Errorf("batch answer %s: %w", id, err)
	}
	st, err := b.open(ctx, loc)
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
func (b *Mode) settleOne(ctx context.Context, id, state string) error {
	if err := b.setState(ctx, id, state); err != nil {
		return err
	}
	if loc, err := b.loc(ctx, id); err == nil {
		if st, err := b.open(ctx, loc); err == nil {
			if err := st.Delete(ctx, b.lineKey(id)); err != nil && !errors.Is(err, storage.ErrNotExist) {
				b.log.WarnContext(ctx, "batch mode: a request line was not deleted", "error", err.Error())
			}
		}
	}
	return nil
}

// settle marks requests (not submitted) for an online call and wakes their
// tasks.
func (b *Mode) settle(ctx context.Context, ids []string, state string) error {
	for _, id := range ids {
		if err := b.settleOne(ctx, id, state); err != nil {
			return err
		}
		if err := b.rdb.SRem(ctx, jobs.BatchModePendingKey(b.group), id).Err(); err != nil {
			return err
		}
	}
	_, err := b.wake(ctx, ids)
	return err
}

// wake runs the tasks waiting for these requests again, and returns how
// many could not be woken yet (still running: they are tried again).
func (b *Mode) wake(ctx context.Context, ids []string) (int, error) {
	left := 0
	for _, id := range ids {
		ws, err := b.rdb.HGetAll(ctx, jobs.BatchModeWaitersKey(b.group, id)).Result()
		if err != nil {
			return left, err
		}
		for task, queue := range ws {
			err := b.insp.RunTask(queue, task)
			if err == nil || errors.Is(err, asynq.ErrTaskNotFound) || strings.Contains(err.Error(), "already in pending") {
				b.rdb.HDel(ctx, jobs.BatchModeWaitersKey(b.group, id), task)
				continue
			}
			left++
		}
	}
	return left, nil
}

// cancelIfAbandoned cancels a provider job when every request in it belongs
// to batches that were cancelled (their items already ended as cancelled).
func (b *Mode) cancelIfAbandoned(ctx context.Context, job batchapi.Job, ids []string) error {
	if job.State == batchapi.StateCancelling || len(ids) == 0 {
		return nil
	}
	batches, unknown, err := b.batchesOf(ctx, ids)
	if err != nil || unknown {
		return err // an unknown owner: keep the job
	}
	for batch := range batches {
		cancelled, err := b.tracker.Cancelled(ctx, batch)
		if err != nil || !cancelled {
			return err
		}
	}
	if err := b.client.Cancel(ctx, job.ID); err != nil {
		return err
	}
	b.log.InfoContext(ctx, "provider batch job cancelled: its batches were cancelled", "job", job.ID)
	return nil
}
