package worker

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/ratelimit"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

// traced puts each model call of a task in a span of its own: provider
// (preset), model, tokens, whether it went through the batch API, the
// task's retries so far, and which send of the task's request it is
// (llamapipe.attempts): a send that failed with a 5xx, a 429 or a
// connection error is sent again by the queue's retry of the task, and its
// reason is kept in the item's kept-answers hash (jobs.KeptAnswersKey,
// field "sends:<task id>") until the item is recorded, so that the re-send's
// span counts it and carries one model.retry event per earlier failure.
// Reasons are status codes or error classes, never a message. With tracing
// off, no send is counted or kept for the spans.
//
// Whether or not tracing is on, every call that was sent (answered, or
// failed at the provider) is counted in its batch's series (jobs.Tracker's
// CountModelCall: the dashboard's model latency), its duration without the
// waits before it was sent (llm.Waits: quota, provider hold, fair share).
// Answers of a provider's batch job are not online calls and are not
// counted; nor are calls a limiter or a batch job held back.
type traced struct {
	llm.Client
	sends *sendLog
	calls modelCalls
	batch string
}

// modelCalls counts a batch's model calls (a *jobs.Tracker).
type modelCalls interface {
	CountModelCall(ctx context.Context, batch string, d time.Duration, failed bool) error
}

var _ modelCalls = (*jobs.Tracker)(nil)

// sendStash is where failed sends are kept (jobs.Tracker).
type sendStash interface {
	KeepAnswer(ctx context.Context, batch, item, name string, answer []byte) error
	KeptAnswer(ctx context.Context, batch, item, name string) ([]byte, bool, error)
}

// sendLog is one task's record of its failed sends.
type sendLog struct {
	mu                sync.Mutex
	stash             sendStash
	batch, item, name string
	read              bool
	failed            []string // reasons of every failed send so far
	pending           int      // failed sends not yet counted by a span
}

// newTraced wraps c for the model calls of item p's current task.
func (w *Worker) newTraced(ctx context.Context, c llm.Client, p jobs.ItemPayload) llm.Client {
	id, _ := asynq.GetTaskID(ctx)
	var stash sendStash
	if w.cfg.Tracker != nil && id != "" {
		stash = w.cfg.Tracker
	}
	calls, _ := w.cfg.Tracker.(modelCalls)
	return &traced{Client: c, sends: &sendLog{stash: stash, batch: p.Batch, item: p.Item, name: "sends:" + id}, calls: calls, batch: p.Batch}
}

// send makes the call and counts it in the batch's series when it was sent
// online (best effort: a Redis error only loses the count).
func (t *traced) send(ctx context.Context, req llm.Request) (llm.Response, error) {
	wctx, waits := llm.WithWaits(ctx)
	start := time.Now()
	resp, err := t.Client.Complete(wctx, req)
	d := max(0, time.Since(start)-waits.Total())
	failed := err != nil
	if failed {
		_, sent := sendFailure(err)
		if !sent {
			return resp, err
		}
	} else if resp.Batch {
		return resp, err
	}
	if t.calls != nil && t.batch != "" {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = t.calls.CountModelCall(cctx, t.batch, d, failed)
	}
	return resp, err
}

// earlier returns the reasons of the task's failed sends that no span
// counted yet (read once per task run, and only for a retried task).
func (l *sendLog) earlier(ctx context.Context) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.read {
		l.read = true
		if retries, _ := asynq.GetRetryCount(ctx); retries > 0 && l.stash != nil {
			if b, ok, err := l.stash.KeptAnswer(ctx, l.batch, l.item, l.name); err == nil && ok && len(b) > 0 {
				l.failed = strings.Split(string(b), ",")
				l.pending = len(l.failed)
			}
		}
	}
	out := l.failed[len(l.failed)-l.pending:]
	l.pending = 0
	return out
}

// fail keeps the reason of a failed send for the task's next run (best
// effort: a Redis error only loses the count).
func (l *sendLog) fail(ctx context.Context, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed = append(l.failed, reason)
	if l.stash != nil {
		_ = l.stash.KeepAnswer(ctx, l.batch, l.item, l.name, []byte(strings.Join(l.failed, ",")))
	}
}

func (t *traced) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	p := t.Profile()
	retries, _ := asynq.GetRetryCount(ctx)
	ctx, span := tracing.Start(ctx, tracing.SpanModel, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("gen_ai.system", p.Provider), attribute.String("gen_ai.request.model", p.Model),
		attribute.String("llamapipe.preset", cmp.Or(p.Preset, p.Provider)), attribute.Int("llamapipe.retries", retries)))
	defer span.End()
	if !span.IsRecording() {
		return t.send(ctx, req) // tracing off: no send log kept
	}
	earlier := t.sends.earlier(ctx)
	span.SetAttributes(attribute.Int("llamapipe.attempts", len(earlier)+1))
	for i, r := range earlier {
		span.AddEvent("model.retry", trace.WithAttributes(attribute.Int("llamapipe.attempt", i+2), attribute.String("llamapipe.reason", r)))
	}
	resp, err := t.send(ctx, req)
	if err != nil {
		reason, sent := sendFailure(err)
		if !sent && (errors.Is(err, errDeferred) || llm.IsRateLimited(err)) {
			// Held back (a quota, the fair share, a provider batch job): not
			// sent, not a failure; the queue brings the task back.
			span.AddEvent("model.held", trace.WithAttributes(attribute.String("llamapipe.reason", reason)))
			return resp, err
		}
		span.SetStatus(codes.Error, reason)
		span.AddEvent("model.error", trace.WithAttributes(attribute.String("llamapipe.reason", reason), attribute.Bool("llamapipe.sent", sent)))
		if sent && llm.KindOf(err) == llm.Retryable {
			t.sends.fail(ctx, reason)
		}
		return resp, err
	}
	span.SetAttributes(attribute.String("gen_ai.response.model", resp.Model),
		attribute.Int("gen_ai.usage.input_tokens", resp.Usage.InputTokens), attribute.Int("gen_ai.usage.output_tokens", resp.Usage.OutputTokens),
		attribute.Bool("llamapipe.batch_api", resp.Batch))
	if resp.Provider != "" {
		span.SetAttributes(attribute.String("llamapipe.provider", resp.Provider)) // who answered, under a fallback chain
	}
	return resp, nil
}

// sendFailure names a failed call's reason, "http_<status>" or the error's
// class (metrics.ErrorClass), and reports whether a request went out to
// the provider (not when a rate limit, fair share or batch job held it).
func sendFailure(err error) (reason string, sent bool) {
	var e *llm.Error
	switch {
	case errors.Is(err, errDeferred):
		return "batch_job", false
	case !errors.As(err, &e):
		return metrics.ErrorClass(err), false
	}
	sent = e.Provider != ratelimit.Provider && e.Provider != ratelimit.FairShareProvider
	if e.Status != 0 {
		return "http_" + strconv.Itoa(e.Status), sent
	}
	return metrics.ErrorClass(err), sent
}

// spanEnd marks span failed when err is a failure of the task (a wait for
// a rate limit, a budget or a batch answer is not), with the error's class
// as its description: never the message, which may quote a provider.
func spanEnd(span trace.Span, err error) error {
	switch {
	case err == nil:
	case isFailure(err):
		span.SetStatus(codes.Error, metrics.ErrorClass(err))
	default:
		span.AddEvent("task.deferred", trace.WithAttributes(attribute.String("llamapipe.reason", metrics.ErrorClass(err))))
	}
	return err
}

// handleFinalize runs a batch's finalize task in a span of its own trace,
// linked to the span that enqueued it (in the batch's ingest trace).
func (w *Worker) handleFinalize(ctx context.Context, t *asynq.Task) error {
	opts := []trace.SpanStartOption{trace.WithNewRoot()}
	if fp, err := jobs.DecodeFinalize(t.Payload()); err == nil {
		opts = append(opts, trace.WithAttributes(attribute.String("llamapipe.batch", fp.Batch)))
		if l, ok := tracing.Link(fp.Trace); ok {
			opts = append(opts, trace.WithLinks(l))
		}
	}
	ctx, span := tracing.Start(ctx, tracing.SpanFinalize, opts...)
	defer span.End()
	return spanEnd(span, w.fin.HandleFinalize(ctx, t))
}
