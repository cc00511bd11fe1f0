package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/prompts"
)

func batchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output location: a folder or s3://bucket/prefix (required)", Sources: env("OUT")},
		&cli.StringFlag{Name: "task", Value: jobs.TaskAuto, Usage: "auto (summarize documents, caption images), summarize or caption", Sources: env("TASK")},
		&cli.StringSliceFlag{Name: "include", Usage: "only keys matching this glob (e.g. '**/*.pdf'; repeatable)", Sources: env("INCLUDE")},
		&cli.StringSliceFlag{Name: "exclude", Usage: "skip keys matching this glob (repeatable)", Sources: env("EXCLUDE")},
		&cli.GenericFlag{Name: "max-size", Value: clix.NewSize(512 << 20), Usage: "skip objects larger than this: 10MB, 512MiB, 1GiB or bytes", Sources: env("MAX_SIZE")},
		&cli.StringFlag{Name: "queue", Value: jobs.QueueDefault, Usage: "queue: critical, default or nightly", Sources: env("QUEUE")},
		&cli.IntFlag{Name: "max-retry", Value: 5, Usage: "retries of an item after a transient failure", Sources: env("MAX_RETRY")},
		maxQueuedFlag(),
		&cli.StringFlag{Name: "language", Value: "en", Usage: "language of the summaries and captions (e.g. en, de, zh, ru)", Sources: env("LANGUAGE")},
		&cli.StringFlag{Name: "products", Usage: "product sidecar for captions: CSV (header: key,sku,name,brand) or JSONL ({\"key\":...,\"sku\":...,\"name\":...,\"brand\":...}), keyed by image key or file name; a path or s3:// URL", Sources: env("PRODUCTS")},
		&cli.BoolFlag{Name: "keep-text", Usage: "also write each document's extracted text: <file>.text.md (what the model saw, with page markers) and <file>.chunks.jsonl (page-anchored chunks for search)", Sources: env("KEEP_TEXT")},
		&cli.BoolFlag{Name: "force", Usage: "process every item, also those whose results are current (same content, prompts, model and options)", Sources: env("FORCE")},
		&cli.BoolFlag{Name: "trust-content", Usage: "process a file whose name lies about its content (text named .jpg, a JPEG named .pdf) by its content instead of failing it", Sources: env("TRUST_CONTENT")},
		&cli.StringFlag{Name: "model-mode", Value: jobs.ModelOnline, Usage: "online, batch (the provider's batch API: its batch price, answers within its window, e.g. 24 h) or auto (batch on the nightly queue)", Sources: env("MODEL_MODE")},
		&cli.StringFlag{Name: "tenant", Usage: "tenant the batch belongs to (its budget and share in the --tenants file; the workers pause its items when its budget is spent)", Sources: env("TENANT")},
		&cli.StringFlag{Name: "webhook", Usage: "http(s) URL the workers POST a signed \"batch.completed\" event to once the manifest is written (the workers need --webhook-secret-file or " + envWebhookSecret + ")", Sources: env("WEBHOOK")},
	}
}

// maxQueuedFlag is --max-queued, the bound of a batch's queued items
// (jobs.Spec.MaxQueued), for ingest, run and serve.
func maxQueuedFlag() cli.Flag {
	return &cli.IntFlag{Name: "max-queued", Value: jobs.DefaultMaxQueued, Usage: "items of a batch in the queue at once (about 85 MB of Redis at 100,000); the rest wait in pages in the output's work area and are queued as items end; 0: no bound", Sources: env("MAX_QUEUED")}
}

// envWebhookSecret holds the key webhooks are signed with, read directly,
// never through a flag value.
const envWebhookSecret = "LLAMAPIPE_WEBHOOK_SECRET"

func workerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: 8, Usage: "tasks processed at once by this process", Sources: env("CONCURRENCY")},
		&cli.BoolFlag{Name: "feed-allow-private", Usage: "let feed image URLs reach private, loopback and link-local addresses (refused by default)", Sources: env("FEED_ALLOW_PRIVATE")},
		metricsListenFlag(),
		&cli.StringFlag{Name: "queues", Value: "critical=6,default=3,nightly=1", Usage: "queues to serve with their priority weights, NAME=WEIGHT,...", Sources: env("QUEUES")},
		&cli.DurationFlag{Name: "retention", Value: jobs.DefaultRetention, Usage: "how long a finalized batch's records stay in Redis (then status and the API say \"expired\"; manifests stay in the output)", Sources: env("RETENTION")},
		&cli.DurationFlag{Name: "shutdown-timeout", Value: 30 * time.Second, Usage: "how long running tasks get to finish after SIGTERM before they return to the queue", Sources: env("SHUTDOWN_TIMEOUT")},
		&cli.StringFlag{Name: "pdf-passwords", Usage: "JSON file {\"key or file name\": \"password\"} for encrypted PDFs (never logged)", Sources: env("PDF_PASSWORDS")},
		&cli.IntFlag{Name: "image-max-side", Value: 1344, Usage: "long side of images sent to the model, in pixels (never upscaled)", Sources: env("IMAGE_MAX_SIDE")},
		&cli.IntFlag{Name: "image-quality", Value: 85, Usage: "JPEG quality of images sent to the model", Sources: env("IMAGE_QUALITY")},
		&cli.StringFlag{Name: "batch-work", Usage: "s3://bucket/prefix where Bedrock batch inference reads and writes its files (Bedrock batch mode only)", Sources: env("BATCH_WORK")},
		&cli.StringFlag{Name: "batch-role-arn", Usage: "IAM service role Bedrock assumes for batch inference jobs (Bedrock batch mode only)", Sources: env("BATCH_ROLE_ARN")},
		&cli.DurationFlag{Name: "batch-poll-interval", Value: time.Minute, Usage: "how often provider batch jobs are polled", Sources: env("BATCH_POLL_INTERVAL")},
		&cli.DurationFlag{Name: "batch-online-after", Value: 15 * time.Minute, Usage: "a failing provider batch API (upload, job status) is waited out this long, or --batch-online-failures times, then its requests are answered online", Sources: env("BATCH_ONLINE_AFTER")},
		&cli.IntFlag{Name: "batch-online-failures", Value: 5, Usage: "failures in a row of a provider batch API after which its requests are answered online", Sources: env("BATCH_ONLINE_FAILURES")},
		&cli.StringFlag{Name: "batch-retry", Value: "online", Usage: "a batch request the provider failed or never answered is asked once more: online, or batch (in the next provider job)", Sources: env("BATCH_RETRY")},
		&cli.StringFlag{Name: "batch-small", Value: "online", Usage: "fewer batch requests than the batch API's minimum per job (Bedrock: 100): online or wait", Sources: env("BATCH_SMALL")},
		&cli.StringFlag{Name: "webhook-secret-file", Usage: "file holding the key completion webhooks are signed with (HMAC-SHA256; also " + envWebhookSecret + "); without one, webhooks are not sent", Sources: env("WEBHOOK_SECRET_FILE")},
	}
}

// promptFlag overrides prompt templates; workers and ingest (for the
// fingerprints of results) must be given the same files.
func promptFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "prompt", Usage: "prompt template file overriding the embedded one of its name (see prompts/doc.go; repeatable); give ingest and workers the same files", Sources: env("PROMPTS")}
}

func loadPrompts(cmd *cli.Command) (prompts.Set, error) {
	s, err := prompts.LoadSet(cmd.StringSlice("prompt"))
	if err != nil {
		return nil, &exitError{code: exitUsage, msg: "--prompt: " + err.Error()}
	}
	return s, nil
}

func needArgs(cmd *cli.Command, what string) ([]string, error) {
	args := cmd.Args().Slice()
	if len(args) == 0 {
		return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("%s: give at least one %s", cmd.Name, what)}
	}
	return args, nil
}

func concat(fs ...[]cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range fs {
		out = append(out, f...)
	}
	return out
}
