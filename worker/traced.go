package worker

import (
	"context"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/llamapipe/llamapipe/jobs/tracing"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// traced puts each model call of a task in a span of its own: provider,
// model, tokens, whether it went through the batch API, and the task's
// retries so far (asynq's count: a re-sent task shows why a call repeats).
type traced struct{ llm.Client }

func (t traced) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	p := t.Profile()
	retries, _ := asynq.GetRetryCount(ctx)
	ctx, span := tracing.Start(ctx, tracing.SpanModel, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("gen_ai.system", p.Provider), attribute.String("gen_ai.request.model", p.Model),
		attribute.Int("llamapipe.retries", retries)))
	defer span.End()
	resp, err := t.Client.Complete(ctx, req)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "model call failed")
		return resp, err
	}
	span.SetAttributes(attribute.String("gen_ai.response.model", resp.Model),
		attribute.Int("gen_ai.usage.input_tokens", resp.Usage.InputTokens), attribute.Int("gen_ai.usage.output_tokens", resp.Usage.OutputTokens),
		attribute.Bool("llamapipe.batch_api", resp.Batch))
	return resp, nil
}
