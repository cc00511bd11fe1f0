package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/ingesttask"
	"github.com/llamapipe/llamapipe/jobs/redisconn"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/feedfetch"
	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
	"github.com/llamapipe/llamapipe/worker/llm/providers"
)

func workerCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "process queued tasks until SIGTERM or SIGINT (running tasks finish or return to the queue)",
		Flags: concat(clix.Category(clix.CatWorker, workerFlags()), clix.Category(clix.CatModel, append(clix.ProviderFlags(), promptFlag())), clix.Category(clix.CatTenancy, []cli.Flag{tenantsFlag()})),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return runWorker(ctx, cmd, stderr)
		},
	}
}

// runWorker processes queued tasks until ctx ends.
func runWorker(ctx context.Context, cmd *cli.Command, stderr io.Writer) error {
	log, err := newLogger(cmd, stderr, slog.LevelInfo)
	if err != nil {
		return err
	}
	c, err := connect(ctx, cmd, false, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	redisconn.WarnDurability(ctx, c.rdb, log)
	w, _, err := newWorker(ctx, cmd, c, log, nil)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// newWorker builds a worker from the flags: metrics, the model client (its
// rate limit shared through c), and the worker configuration. check, when
// set, vets the model before anything else starts.
func newWorker(ctx context.Context, cmd *cli.Command, c *conn, log *slog.Logger, check func(llm.Client) error) (*worker.Worker, llm.Client, error) {
	m, err := workerMetrics(ctx, cmd, c, log)
	if err != nil {
		return nil, nil, err
	}
	budgets, err := openTenants(cmd, c, log)
	if err != nil {
		return nil, nil, err
	}
	model, err := openModel(ctx, cmd, c, m, budgets)
	if err != nil {
		return nil, nil, err
	}
	if check != nil {
		if err := check(model); err != nil {
			return nil, nil, err
		}
	}
	wcfg, err := workerConfig(cmd, c, model, log)
	if err != nil {
		return nil, nil, err
	}
	wcfg.Metrics = m
	pcfg, _ := clix.ProviderConfig(cmd) // checked by openModel
	pcfg.Redis, pcfg.Metrics = c.rdb, m
	ch, err := providers.OpenChain(ctx, pcfg, cmd.StringSlice("fallback"), model.Profile(), budgets, cmd.Int("concurrency"))
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, msg: "--fallback: " + err.Error()}
	}
	wcfg.Fallbacks, wcfg.Outages, wcfg.FallbackPolicy = ch.Fallbacks, ch.Outages, ch.Policy
	// Without --tenants, spend is still charged (no budgets, no pauses, no
	// fair-share gate) and the metrics still carry the tenant.
	wcfg.Tenants = budgets
	if budgets == nil {
		wcfg.Tenants = &tenants.Budgets{File: tenants.Static(nil), Ledger: tenants.NewLedger(c.rdb, ""), Tracker: c.tracker}
	}
	if wcfg.Batch, err = openBatch(ctx, cmd, model.Profile(), log); err != nil {
		return nil, nil, err
	}
	wcfg.BatchPollInterval, wcfg.BatchSmall, wcfg.BatchRetry = cmd.Duration("batch-poll-interval"), cmd.String("batch-small"), cmd.String("batch-retry")
	wcfg.BatchOnlineAfter, wcfg.BatchOnlineAfterFailures = cmd.Duration("batch-online-after"), cmd.Int("batch-online-failures")
	w, err := worker.New(wcfg)
	return w, model, err
}

func workerConfig(cmd *cli.Command, c *conn, model llm.Client, log *slog.Logger) (worker.Config, error) {
	pw, err := clix.ReadSecretMap(cmd.String("pdf-passwords"))
	if err != nil {
		return worker.Config{}, &exitError{code: exitUsage, msg: "--pdf-passwords: " + err.Error()}
	}
	queues, err := jobs.ParseQueueWeights(cmd.String("queues"))
	if err != nil {
		return worker.Config{}, &exitError{code: exitUsage, msg: "--queues: " + err.Error()}
	}
	ps, err := loadPrompts(cmd)
	if err != nil {
		return worker.Config{}, err
	}
	// The webhook key, like API keys: from a file, else the environment;
	// never logged or shown.
	hookKey := strings.TrimSpace(os.Getenv(envWebhookSecret))
	if f := cmd.String("webhook-secret-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return worker.Config{}, &exitError{code: exitUsage, msg: fmt.Sprintf("--webhook-secret-file: %v", err)}
		}
		if hookKey = strings.TrimSpace(string(b)); hookKey == "" {
			return worker.Config{}, &exitError{code: exitUsage, msg: "--webhook-secret-file " + f + " is empty"}
		}
	}
	// Scheduled ingests run as tasks on the workers.
	ingester := &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log,
		Provider: model.Profile().Provider, Model: model.Profile().Model, Prompts: ps, Feeds: feed.New(c.rdb, "")}
	return worker.Config{
		Prompts: ps,
		Handlers: map[string]asynq.Handler{ingesttask.Type: asynq.HandlerFunc(ingester.ProcessTask),
			feed.TypeFeed: asynq.HandlerFunc(ingester.TopUp)},
		Feeds:           ingester.Feeds,
		Queues:          queues,
		Redis:           c.opt,
		Tracker:         c.tracker,
		Open:            opener(cmd),
		Model:           model,
		Logger:          log,
		Concurrency:     cmd.Int("concurrency"),
		Feed:            feedfetch.Config{AllowPrivate: cmd.Bool("feed-allow-private")},
		ShutdownTimeout: cmd.Duration("shutdown-timeout"),
		Retention:       cmd.Duration("retention"),
		Image:           imageprep.Options{MaxSide: cmd.Int("image-max-side"), Quality: cmd.Int("image-quality")},
		PDFPasswords:    pw,
		WebhookSecret:   []byte(hookKey),
	}, nil
}

// openBatch opens the model's batch API for items in batch mode, when its
// provider has one; without one such items are answered online.
func openBatch(ctx context.Context, cmd *cli.Command, prof llm.Profile, log *slog.Logger) (batchapi.Client, error) {
	if prof.BatchAPI == "" {
		return nil, nil
	}
	if s := cmd.String("batch-small"); s != "online" && s != "wait" {
		return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--batch-small %q: use online or wait", s)}
	}
	if s := cmd.String("batch-retry"); s != "online" && s != "batch" {
		return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--batch-retry %q: use online or batch", s)}
	}
	cfg, err := clix.ProviderConfig(cmd)
	if err != nil {
		return nil, err
	}
	o := providers.BatchOptions{RoleARN: cmd.String("batch-role-arn"), Logger: log}
	if prof.BatchAPI == llm.BatchBedrock {
		work := cmd.String("batch-work")
		if work == "" || o.RoleARN == "" {
			log.Warn("Bedrock batch inference needs --batch-work and --batch-role-arn: items in batch mode are answered online")
			return nil, nil
		}
		if o.Store, err = opener(cmd)(ctx, work); err != nil {
			return nil, &exitError{code: exitUsage, msg: "--batch-work: " + err.Error()}
		}
	}
	c, err := providers.OpenBatch(ctx, cfg, o)
	if err != nil {
		return nil, &exitError{code: exitUsage, msg: "batch API: " + err.Error()}
	}
	return c, nil
}
