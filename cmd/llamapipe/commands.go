package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/hibiken/asynq"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/worker"
	"github.com/llamapipe/llamapipe/worker/estimate"
	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
	"github.com/llamapipe/llamapipe/worker/llm/providers"
)

func batchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output location: a folder or s3://bucket/prefix (required)", Sources: env("OUT")},
		&cli.StringFlag{Name: "task", Value: jobs.TaskAuto, Usage: "auto (summarize documents, caption images), summarize or caption", Sources: env("TASK")},
		&cli.StringSliceFlag{Name: "include", Usage: "only keys matching this glob (e.g. '**/*.pdf'; repeatable)", Sources: env("INCLUDE")},
		&cli.StringSliceFlag{Name: "exclude", Usage: "skip keys matching this glob (repeatable)", Sources: env("EXCLUDE")},
		&cli.Int64Flag{Name: "max-size", Value: 512 << 20, Usage: "skip objects larger than this many bytes", Sources: env("MAX_SIZE")},
		&cli.StringFlag{Name: "queue", Value: jobs.QueueDefault, Usage: "queue: critical, default or nightly", Sources: env("QUEUE")},
		&cli.IntFlag{Name: "max-retry", Value: 5, Usage: "retries of an item after a transient failure", Sources: env("MAX_RETRY")},
		&cli.StringFlag{Name: "language", Value: "en", Usage: "language of the summaries and captions (e.g. en, de, zh, ru)", Sources: env("LANGUAGE")},
		&cli.StringFlag{Name: "products", Usage: "product sidecar for captions: CSV (header: key,sku,name,brand) or JSONL ({\"key\":...,\"sku\":...,\"name\":...,\"brand\":...}), keyed by image key or file name; a path or s3:// URL", Sources: env("PRODUCTS")},
		&cli.BoolFlag{Name: "force", Usage: "process every item, also those whose results are current (same content, prompts, model and options)", Sources: env("FORCE")},
		&cli.StringFlag{Name: "model-mode", Value: jobs.ModelOnline, Usage: "online, batch (the provider's batch API: its batch price, answers within its window, e.g. 24 h) or auto (batch on the nightly queue)", Sources: env("MODEL_MODE")},
		&cli.StringFlag{Name: "tenant", Usage: "tenant the batch belongs to (its budget and share in the --tenants file; the workers pause its items when its budget is spent)", Sources: env("TENANT")},
		&cli.StringFlag{Name: "webhook", Usage: "http(s) URL the workers POST a signed \"batch.completed\" event to once the manifest is written (the workers need --webhook-secret-file or " + envWebhookSecret + ")", Sources: env("WEBHOOK")},
	}
}

// envWebhookSecret holds the key webhooks are signed with, read directly,
// never through a flag value.
const envWebhookSecret = "LLAMAPIPE_WEBHOOK_SECRET"

func workerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: 8, Usage: "tasks processed at once by this process", Sources: env("CONCURRENCY")},
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

func ingestOptions(cmd *cli.Command, sources []string, prof llm.Profile) (ingest.Options, error) {
	ps, err := loadPrompts(cmd)
	if err != nil {
		return ingest.Options{}, err
	}
	if hook := cmd.String("webhook"); hook != "" {
		u, err := url.Parse(hook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return ingest.Options{}, &exitError{code: exitUsage, msg: fmt.Sprintf("--webhook %q: give an absolute http:// or https:// URL", hook)}
		}
	}
	mode := cmd.String("model-mode")
	if !jobs.ValidModelMode(mode) {
		return ingest.Options{}, &exitError{code: exitUsage, msg: fmt.Sprintf("--model-mode %q: use online, batch or auto", mode)}
	}
	if mode == jobs.ModelBatch && prof.BatchAPI == "" {
		return ingest.Options{}, &exitError{code: exitUsage, msg: fmt.Sprintf("--model-mode batch: the model's provider (%s) has no batch API that llamapipe uses; use --model-mode online or auto", prof.Provider)}
	}
	if err := tenants.CheckName(cmd.String("tenant")); err != nil {
		return ingest.Options{}, &exitError{code: exitUsage, msg: "--tenant: " + err.Error()}
	}
	return ingest.Options{
		Tenant:   cmd.String("tenant"),
		Webhook:  cmd.String("webhook"),
		Prompts:  ps,
		Sources:  sources,
		Out:      cmd.String("out"),
		Task:     cmd.String("task"),
		Include:  cmd.StringSlice("include"),
		Exclude:  cmd.StringSlice("exclude"),
		MaxSize:  cmd.Int64("max-size"),
		Queue:    cmd.String("queue"),
		MaxRetry: cmd.Int("max-retry"),
		Job: jobs.Options{Language: cmd.String("language"), MaxOutputTokens: cmd.Int("max-output-tokens"), Products: cmd.String("products"),
			ModelMode: mode},
		Force:    cmd.Bool("force"),
		Provider: prof.Provider,
		Model:    prof.Model,
	}, nil
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
	w, err := worker.New(wcfg)
	return w, model, err
}

func workerConfig(cmd *cli.Command, c *conn, model llm.Client, log *slog.Logger) (worker.Config, error) {
	pw, err := readSecretMap(cmd.String("pdf-passwords"))
	if err != nil {
		return worker.Config{}, &exitError{code: exitUsage, msg: "--pdf-passwords: " + err.Error()}
	}
	queues, err := parseQueues(cmd.String("queues"))
	if err != nil {
		return worker.Config{}, err
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
		Provider: model.Profile().Provider, Model: model.Profile().Model, Prompts: ps}
	return worker.Config{
		Prompts:         ps,
		Handlers:        map[string]asynq.Handler{jobs.TypeIngest: asynq.HandlerFunc(ingester.ProcessTask)},
		Queues:          queues,
		Redis:           c.opt,
		Tracker:         c.tracker,
		Open:            opener(cmd),
		Model:           model,
		Logger:          log,
		Concurrency:     cmd.Int("concurrency"),
		ShutdownTimeout: cmd.Duration("shutdown-timeout"),
		Retention:       cmd.Duration("retention"),
		Image:           imageprep.Options{MaxSide: cmd.Int("image-max-side"), Quality: cmd.Int("image-quality")},
		PDFPasswords:    pw,
		WebhookSecret:   []byte(hookKey),
	}, nil
}

// printTenant shows a batch's tenant with its spend today and this month
// (and what is left of its budget, with --tenants).
func printTenant(ctx context.Context, w io.Writer, cmd *cli.Command, c *conn, b jobs.Batch) error {
	if b.Tenant == "" {
		return nil
	}
	budgets, err := openTenants(cmd, c, nil)
	if err != nil {
		return err
	}
	if budgets == nil {
		budgets = &tenants.Budgets{File: tenants.Static(nil), Ledger: tenants.NewLedger(c.rdb, "")}
	}
	st, err := budgets.Status(ctx, b.Tenant)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "tenant %s\n", st.Summary(""))
	return nil
}

// checkBudget refuses, before anything is queued, a batch whose estimate
// (ingest.Ingester.Plan with worker/estimate under prof) is over what is left of its tenant's daily
// or monthly budget in the --tenants file. Without the file, or for a
// tenant without a budget, nothing is estimated.
func checkBudget(ctx context.Context, cmd *cli.Command, c *conn, in *ingest.Ingester, o ingest.Options, prof llm.Profile, log *slog.Logger) error {
	b, err := openTenants(cmd, c, log)
	if err != nil || b == nil {
		return err
	}
	t := b.Config().Lookup(o.Tenant)
	if t.Budget.Daily.Unlimited() && t.Budget.Monthly.Unlimited() {
		return nil
	}
	plan, err := in.Plan(ctx, o, estimate.New(prof, estimate.Options{MaxOutputTokens: o.Job.MaxOutputTokens}), ingest.PlanOptions{})
	if err != nil {
		return fmt.Errorf("estimate the batch for its tenant's budget: %w", err)
	}
	est := tenants.Spend{Cost: plan.All.Cost, Tokens: plan.All.InputTokens + plan.All.OutputTokens}
	if err := b.CheckEstimate(ctx, o.Tenant, est, plan.Currency); err != nil {
		if errors.Is(err, tenants.ErrOverBudget) {
			return &exitError{code: exitFailed, msg: "batch refused: " + err.Error()}
		}
		return err
	}
	return nil
}

// parseQueues reads "critical=6,default=3,nightly=1".
func parseQueues(s string) (map[string]int, error) {
	m := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 1 || !jobs.ValidQueue(name) {
			return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--queues: %q: use NAME=WEIGHT with a queue of critical, default or nightly and a weight of 1 or more", part)}
		}
		m[name] = n
	}
	return m, nil
}

// onBatch is the action of a command that works on one batch (its only
// argument) in the Redis that --redis-url names.
func onBatch(stderr io.Writer, fn func(ctx context.Context, cmd *cli.Command, c *conn, id string) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		args, err := needArgs(cmd, "batch ID")
		if err != nil {
			return err
		}
		c, err := connect(ctx, cmd, false, stderr)
		if err != nil {
			return err
		}
		defer c.Close()
		return fn(ctx, cmd, c, args[0])
	}
}

func needArgs(cmd *cli.Command, what string) ([]string, error) {
	args := cmd.Args().Slice()
	if len(args) == 0 {
		return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("%s: give at least one %s", cmd.Name, what)}
	}
	return args, nil
}

func runCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "ingest sources, process them with in-process workers and wait: the all-in-one path for one machine",
		ArgsUsage: "SRC... (folders or s3://bucket/prefix)",
		Flags:     concat(batchFlags(), workerFlags(), providerFlags(), []cli.Flag{promptFlag(), tenantsFlag()}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			sources, err := needArgs(cmd, "source")
			if err != nil {
				return err
			}
			// The progress display says what matters; logs only for errors
			// unless --log-level asks for more.
			log, err := newLogger(cmd, stderr, slog.LevelError)
			if err != nil {
				return err
			}
			c, err := connect(ctx, cmd, true, stderr)
			if err != nil {
				return err
			}
			defer c.Close()
			w, model, err := newWorker(ctx, cmd, c, log, func(m llm.Client) error {
				return checkTaskForModel(cmd.String("task"), m.Profile())
			})
			if err != nil {
				return err
			}
			wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
			werr := make(chan error, 1)
			go func() { werr <- w.Run(wctx) }()
			defer func() {
				stopWorkers()
				<-werr
			}()

			in := &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log}
			o, err := ingestOptions(cmd, sources, model.Profile())
			if err != nil {
				return err
			}
			if err := checkBudget(ctx, cmd, c, in, o, model.Profile(), log); err != nil {
				return err
			}
			res, err := in.Run(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "llamapipe: batch %s: %d items (%d queued, %d skipped)\n", res.BatchID, res.Total, res.Enqueued, res.Skipped)
			return follow(ctx, c.tracker, res.BatchID, stdout, stderr, true)
		},
	}
}

func ingestCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "ingest",
		Usage:     "enqueue a batch for the workers; prints only its ID on standard output",
		ArgsUsage: "SRC... (folders or s3://bucket/prefix)",
		Flags:     concat(batchFlags(), providerFlags(), []cli.Flag{promptFlag(), tenantsFlag()}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			in, c, o, done, err := ingestSetup(ctx, cmd, stderr)
			if err != nil {
				return err
			}
			defer done()
			prof, err := plannedProfile(cmd)
			if err != nil {
				return err
			}
			if err := checkBudget(ctx, cmd, c, in, o, prof, nil); err != nil {
				return err
			}
			res, err := in.Run(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "llamapipe: batch %s: %d items (%d queued, %d skipped)\n", res.BatchID, res.Total, res.Enqueued, res.Skipped)
			fmt.Fprintln(stdout, res.BatchID)
			return nil
		},
	}
}

// ingestSetup is the start of the commands that create batches from their
// arguments (ingest, watch): logger, Redis, the model profile the workers
// use (checked against the task) and the batch options. done closes Redis.
func ingestSetup(ctx context.Context, cmd *cli.Command, stderr io.Writer) (in *ingest.Ingester, c *conn, o ingest.Options, done func(), err error) {
	sources, err := needArgs(cmd, "source")
	if err != nil {
		return nil, nil, o, nil, err
	}
	log, err := newLogger(cmd, stderr, slog.LevelInfo)
	if err != nil {
		return nil, nil, o, nil, err
	}
	prof, err := plannedProfile(cmd)
	if err != nil {
		return nil, nil, o, nil, err
	}
	if err := checkTaskForModel(cmd.String("task"), prof); err != nil {
		return nil, nil, o, nil, err
	}
	if o, err = ingestOptions(cmd, sources, prof); err != nil {
		return nil, nil, o, nil, err
	}
	if c, err = connect(ctx, cmd, false, stderr); err != nil {
		return nil, nil, o, nil, err
	}
	in = &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log}
	return in, c, o, c.Close, nil
}

func workerCommand(stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "process queued tasks until SIGTERM or SIGINT (running tasks finish or return to the queue)",
		Flags: concat(workerFlags(), providerFlags(), []cli.Flag{promptFlag(), tenantsFlag()}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			log, err := newLogger(cmd, stderr, slog.LevelInfo)
			if err != nil {
				return err
			}
			c, err := connect(ctx, cmd, false, stderr)
			if err != nil {
				return err
			}
			defer c.Close()
			for _, warn := range jobs.CheckDurability(ctx, c.rdb) {
				log.Warn("redis may lose data", "warning", warn)
			}
			w, _, err := newWorker(ctx, cmd, c, log, nil)
			if err != nil {
				return err
			}
			return w.Run(ctx)
		},
	}
}

func statusCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a batch's progress; with --wait, follow it to the end (exit status 1 if items failed)",
		ArgsUsage: "BATCH",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "wait", Aliases: []string{"w"}, Usage: "follow the batch until its manifest is written", Sources: env("WAIT")},
			&cli.StringFlag{Name: "tenants", Usage: "tenants file: show what is left of the batch's tenant's budget (and count days in its timezone)", Sources: env("TENANTS")},
		},
		Action: onBatch(stderr, func(ctx context.Context, cmd *cli.Command, c *conn, id string) error {
			if cmd.Bool("wait") {
				return follow(ctx, c.tracker, id, stdout, stderr, false)
			}
			cnt, err := c.tracker.Counts(ctx, id)
			if err != nil {
				return err
			}
			b, err := c.tracker.Get(ctx, id)
			if err != nil {
				return err
			}
			if err := printStatus(ctx, stdout, c.tracker, b, cnt); err != nil {
				return err
			}
			return printTenant(ctx, stdout, cmd, c, b)
		}),
	}
}

func concat(fs ...[]cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range fs {
		out = append(out, f...)
	}
	return out
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
	cfg, err := providerConfig(cmd)
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
