package clix

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/llamapipe/llamapipe/jobs/tracing"
)

// SetupTracing turns on OTLP trace export when the standard
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set
// (and OTEL_SDK_DISABLED is not "true"); the exporter reads the other
// OTEL_EXPORTER_OTLP_* variables. The returned func flushes and stops it.
// A failure is reported on stderr and leaves tracing off.
func SetupTracing(ctx context.Context, stderr io.Writer) func() {
	endpoint := cmp.Or(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
	if os.Getenv("OTEL_SDK_DISABLED") == "true" {
		endpoint = ""
	}
	shutdown, err := tracing.Setup(ctx, endpoint, "llamapipe", ReadVersion().Module)
	if err != nil {
		fmt.Fprintf(stderr, "llamapipe: tracing off: %v\n", err)
		return func() {}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = shutdown(ctx)
	}
}
