package batchmode

import (
	"context"
	"slices"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

// The collector and poll tasks serve many items at once, so their spans are
// roots of their own traces (group, requests, provider job), linked to the
// model.call spans that left their requests: the request's hash keeps
// that span's traceparent ("trace", written by leave). At most
// tracing.MaxLinks links per span, and only when the span records.

// startSpan starts a collector or poll span.
func (b *Mode) startSpan(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tracing.Start(ctx, name, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(append([]attribute.KeyValue{attribute.String("llamapipe.group", b.group)}, attrs...)...))
}

// linkRequests links span to the items behind the first tracing.MaxLinks of
// ids by request ID and records how many requests it served. Only a span
// that records pays for the sort (on a copy: ids keep their order).
func (b *Mode) linkRequests(ctx context.Context, span trace.Span, ids []string) {
	span.SetAttributes(attribute.Int("llamapipe.requests", len(ids)))
	if !span.IsRecording() || len(ids) == 0 {
		return
	}
	ids = slices.Sorted(slices.Values(ids))[:min(len(ids), tracing.MaxLinks)]
	cmds := make([]*redis.StringCmd, len(ids))
	_, _ = b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, jobs.BatchModeRequestKey(b.group, id), "trace")
		}
		return nil
	})
	for _, c := range cmds {
		if l, ok := tracing.Link(c.Val()); ok {
			span.AddLink(l)
		}
	}
}

// endSpan marks span failed by err's class (never its message) and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, metrics.ErrorClass(err))
	}
	span.End()
}
