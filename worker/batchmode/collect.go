package batchmode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/batchtask"
	"github.com/llamapipe/llamapipe/jobs/lease"
	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
)

// HandleCollect is the handler of batchtask.TypeBatchCollect: it cuts the
// pending requests into input files and submits them, one provider job per
// file.
//
// A failing batch API (an upload or a job's creation) is waited out: the
// batches of the pending requests show it (Counts.Warning), another
// collector tries again after the collect window, and after
// Config.OnlineAfter or Config.OnlineAfterFailures the pending requests go
// online.
func (b *Mode) HandleCollect(ctx context.Context, t *asynq.Task) (err error) {
	ctx, span := b.startSpan(ctx, tracing.SpanCollect)
	defer func() { endSpan(span, err) }()
	p, err := batchtask.DecodeCollect(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if p.Group != b.group {
		return fmt.Errorf("batch requests of %s: this worker has no batch API for them (it serves %s)", p.Group, b.profile.Model)
	}
	// One collector of a group at a time: two would both submit the
	// pending requests, and the provider would be paid twice.
	release, ok, err := lease.TryAcquire(ctx, b.rdb, jobs.BatchModeCollectLockKey(b.group), lease.Holder(), jobs.BatchModeCollectLockTTL)
	if err != nil {
		return fmt.Errorf("batch collect: %w", err)
	}
	if !ok {
		return b.collectLater(ctx)
	}
	defer release()
	ids, err := b.collect(ctx)
	b.linkRequests(ctx, span, ids)
	var pe *providerError
	if !errors.As(err, &pe) {
		if err == nil {
			err = b.recovered(ctx, "collect", ids)
		}
		return err
	}
	pending, err := b.rdb.SMembers(ctx, jobs.BatchModePendingKey(b.group)).Result()
	if err != nil {
		return fmt.Errorf("batch collect: %w", err)
	}
	online, err := b.failed(ctx, "collect", pending, pe)
	if err != nil {
		return err
	}
	if online {
		b.log.WarnContext(ctx, "provider batch API still failing: answering the pending requests online", "requests", len(pending))
		return b.settle(ctx, pending, bmOnline)
	}
	return b.collectLater(ctx)
}

// collectLater enqueues a collector due after the collect window, under an
// ID of its own (the window's collector may have run already).
func (b *Mode) collectLater(ctx context.Context) error {
	nt, err := batchtask.NewCollectTask(b.group, b.now(), b.collectWindow)
	if err == nil {
		_, err = b.enq.EnqueueContext(ctx, nt)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("batch collect: enqueue the next collector: %w", err)
	}
	return nil
}

// collect submits the pending requests; it returns those it saw.
func (b *Mode) collect(ctx context.Context) ([]string, error) {
	ids, err := b.rdb.SMembers(ctx, jobs.BatchModePendingKey(b.group)).Result()
	if err != nil {
		return nil, fmt.Errorf("batch collect: %w", err)
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		return nil, nil
	}
	limits := b.client.Limits()
	if limits.MinLines > 0 && len(ids) < limits.MinLines {
		if b.small == "wait" {
			// The next window's collector, due when that window ends: due
			// earlier, it would run while requests still join its window,
			// and those would find its ID taken and never be collected.
			d := 5 * time.Minute
			now := b.now()
			next := now.Truncate(d).Add(d)
			nt, err := batchtask.NewCollectTask(b.group, next, next.Add(d).Sub(now))
			if err == nil {
				_, err = b.enq.EnqueueContext(ctx, nt)
			}
			if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				return ids, err
			}
			return ids, nil
		}
		b.log.InfoContext(ctx, "too few requests for a provider batch job: answering them online",
			"requests", len(ids), "minimum", limits.MinLines)
		return ids, b.settle(ctx, ids, bmOnline)
	}
	lines := make(map[string][]byte, len(ids))
	packer := batchapi.NewPacker(func(l batchapi.Line) ([]byte, error) { return lines[l.CustomID], nil }, limits)
	for _, id := range ids {
		line, err := b.readLine(ctx, id)
		if errors.Is(err, storage.ErrNotExist) {
			if err := b.settle(ctx, []string{id}, bmOnline); err != nil {
				return ids, err
			}
			continue
		}
		if err != nil {
			return ids, err
		}
		lines[id] = line
		f, err := packer.Add(batchapi.Line{CustomID: id})
		if errors.Is(err, batchapi.ErrPermanent) {
			if err := b.settle(ctx, []string{id}, bmOnline); err != nil {
				return ids, err
			}
			continue
		}
		if err != nil {
			return ids, err
		}
		if f != nil {
			if err := b.submit(ctx, f); err != nil {
				return ids, err
			}
			for _, id := range f.CustomIDs {
				delete(lines, id)
			}
		}
	}
	if f := packer.Flush(); f != nil {
		return ids, b.submit(ctx, f)
	}
	return ids, nil
}

func (b *Mode) readLine(ctx context.Context, id string) ([]byte, error) {
	loc, err := b.loc(ctx, id)
	if err != nil {
		return nil, err
	}
	st, err := b.open(ctx, loc)
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
func (b *Mode) submit(ctx context.Context, f *batchapi.File) error {
	h := sha256.Sum256([]byte(strings.Join(f.CustomIDs, ",")))
	name := b.group + "-" + hex.EncodeToString(h[:6])
	job, err := b.client.Submit(ctx, name, bytes.NewReader(f.Data), f.Lines())
	var few *batchapi.TooFewLinesError
	if errors.As(err, &few) {
		return b.settle(ctx, f.CustomIDs, bmOnline)
	}
	if err != nil {
		return &providerError{fmt.Errorf("batch submit %s (%d requests): %w", name, f.Lines(), err)}
	}
	meta, _ := json.Marshal(job)
	_, err = b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		args := make([]any, len(f.CustomIDs))
		for i, id := range f.CustomIDs {
			args[i] = id
			p.HSet(ctx, jobs.BatchModeRequestKey(b.group, id), "state", bmJob+job.ID)
			p.Expire(ctx, jobs.BatchModeRequestKey(b.group, id), jobs.BatchModeRequestTTL)
		}
		p.SRem(ctx, jobs.BatchModePendingKey(b.group), args...)
		p.SAdd(ctx, jobs.BatchModeJobKey(b.group, job.ID), args...)
		p.Expire(ctx, jobs.BatchModeJobKey(b.group, job.ID), jobs.BatchModeJobTTL)
		p.Set(ctx, jobs.BatchModeJobMetaKey(b.group, job.ID), meta, jobs.BatchModeJobTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("batch submit %s: record job %s: %w", name, job.ID, err)
	}
	b.log.InfoContext(ctx, "provider batch job submitted", "job", job.ID, "requests", f.Lines(), "bytes", len(f.Data))
	trace.SpanFromContext(ctx).AddEvent("batch.submitted", trace.WithAttributes(attribute.String("llamapipe.job", job.ID),
		attribute.Int("llamapipe.requests", f.Lines())))
	return b.schedulePoll(ctx, job.ID, 0)
}

func (b *Mode) schedulePoll(ctx context.Context, job string, attempt int) error {
	t, err := batchtask.NewPollTask(batchtask.PollPayload{Group: b.group, Job: job, Attempt: attempt}, b.pollInterval)
	if err != nil {
		return err
	}
	if _, err := b.enq.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("batch mode: enqueue poll of %s: %w", job, err)
	}
	return nil
}
