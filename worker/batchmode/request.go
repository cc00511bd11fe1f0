package batchmode

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

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/batchtask"
	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
)

// complete returns the batch answer to req when there is one, calls the
// model online when the batch could not answer it, and otherwise leaves the
// request pending and returns ErrDeferred.
func (b *Mode) complete(ctx context.Context, c *itemClient, req llm.Request) (llm.Response, error) {
	// The request's ID is a hash of its line with a fixed custom ID (and
	// its tenant), so the same request always gets the same ID (and the
	// same answer).
	probe, err := b.client.Encode(batchapi.Line{CustomID: "probe", Req: req})
	if err != nil {
		return llm.Response{}, err
	}
	if max := b.client.Limits().MaxLineBytes; max > 0 && int64(len(probe)) > max {
		return c.online.Complete(ctx, req) // too large for a batch file
	}
	// Identical requests share a line only within a tenant: the line and
	// its answer live under the first item's output, which another tenant
	// must not read (a request without a tenant keeps the ID of before).
	scope := b.group + "\x00"
	if c.tenant != "" {
		scope += c.tenant + "\x00"
	}
	h := sha256.Sum256(append([]byte(scope), probe...))
	id := "r" + hex.EncodeToString(h[:15])
	state, err := b.rdb.HGet(ctx, jobs.BatchModeRequestKey(b.group, id), "state").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return llm.Response{}, fmt.Errorf("batch mode: %w", err)
	}
	if resp, done, err := b.settled(ctx, c, req, id, state); done {
		return resp, err
	}
	if state == "" {
		if err := b.leave(ctx, req, id, c.item); err != nil {
			return llm.Response{}, err
		}
	}
	// Wait for the answer: register this task, then look again (an answer
	// stored in between would not have woken it).
	taskID, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	if taskID != "" {
		_, err := b.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
			pl.HSet(ctx, jobs.BatchModeWaitersKey(b.group, id), taskID, queue)
			pl.Expire(ctx, jobs.BatchModeWaitersKey(b.group, id), jobs.BatchModeRequestTTL)
			return nil
		})
		if err != nil {
			return llm.Response{}, fmt.Errorf("batch mode: %w", err)
		}
	}
	state, err = b.rdb.HGet(ctx, jobs.BatchModeRequestKey(b.group, id), "state").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return llm.Response{}, fmt.Errorf("batch mode: %w", err)
	}
	if resp, done, err := b.settled(ctx, c, req, id, state); done {
		return resp, err
	}
	return llm.Response{}, ErrDeferred
}

// leave writes a new request's line next to the item's results and makes
// it pending (once, whoever asks first), with a collector to pick it up.
func (b *Mode) leave(ctx context.Context, req llm.Request, id string, p Item) error {
	line, err := b.client.Encode(batchapi.Line{CustomID: id, Req: req})
	if err != nil {
		return err
	}
	out, err := b.open(ctx, p.Out)
	if err != nil {
		return err
	}
	if err := out.Put(ctx, b.lineKey(id), bytes.NewReader(line), int64(len(line)), "application/json"); err != nil {
		return fmt.Errorf("batch mode: write request: %w", err)
	}
	first, err := b.rdb.HSetNX(ctx, jobs.BatchModeRequestKey(b.group, id), "state", bmPending).Result()
	if err != nil {
		return fmt.Errorf("batch mode: %w", err)
	}
	if !first {
		return nil
	}
	_, err = b.rdb.TxPipelined(ctx, func(pl redis.Pipeliner) error {
		pl.HSet(ctx, jobs.BatchModeRequestKey(b.group, id), "loc", p.Out, "batch", p.Batch, "trace", tracing.Inject(ctx))
		pl.Expire(ctx, jobs.BatchModeRequestKey(b.group, id), jobs.BatchModeRequestTTL)
		pl.SAdd(ctx, jobs.BatchModePendingKey(b.group), id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("batch mode: %w", err)
	}
	return b.scheduleCollect(ctx)
}

// settled returns the answer for a request whose batch fate is known:
// answered (read back), or to be asked online.
func (b *Mode) settled(ctx context.Context, c *itemClient, req llm.Request, id, state string) (llm.Response, bool, error) {
	switch state {
	case bmAnswered:
		loc, err := b.loc(ctx, id)
		if err != nil {
			return llm.Response{}, true, err
		}
		st, err := b.open(ctx, loc)
		if err != nil {
			return llm.Response{}, true, err
		}
		rc, err := st.Get(ctx, b.answerKey(id), nil)
		if errors.Is(err, storage.ErrNotExist) {
			// The answer object is gone (cleaned up): ask online.
			resp, err := c.online.Complete(ctx, req)
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
		prof := b.profile
		cost := prof.Prices.Cost(resp.Usage)
		if prof.Prices.BatchDiscount > 0 {
			cost *= prof.Prices.BatchDiscount
		}
		b.metrics.ModelRequestFor(c.tenant, prof.Provider, cmp.Or(resp.Model, prof.Model), 0,
			resp.Usage.InputTokens, resp.Usage.OutputTokens, cost, prof.Prices.Currency, nil)
		return resp, true, nil
	case bmOnline:
		resp, err := c.online.Complete(ctx, req)
		return resp, true, err
	}
	return llm.Response{}, false, nil
}

func (b *Mode) scheduleCollect(ctx context.Context) error {
	d := b.collectWindow
	t, err := batchtask.NewCollectTask(b.group, b.now().Truncate(d), d)
	if err != nil {
		return err
	}
	if _, err := b.enq.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("batch mode: enqueue collector: %w", err)
	}
	return nil
}
