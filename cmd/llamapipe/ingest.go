package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/cmd/llamapipe/ui"
	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/speccheck"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/worker/estimate"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/providers"
)

func ingestCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "ingest",
		Usage:     "enqueue a batch for the workers; prints only its ID on standard output",
		ArgsUsage: "SRC... (folders or s3://bucket/prefix)",
		Flags: concat(clix.Category(clix.CatBatch, batchFlags()), clix.Category(clix.CatModel, append(clix.ProviderFlags(), promptFlag())),
			clix.Category(clix.CatTenancy, []cli.Flag{tenantsFlag()}), []cli.Flag{clix.JSONFlag()}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return runIngest(ctx, cmd, stdout, stderr)
		},
	}
}

// runIngest enqueues a batch with ingest.Ingester.Run and prints its ID.
func runIngest(ctx context.Context, cmd *cli.Command, stdout, stderr io.Writer) error {
	in, c, o, done, err := ingestSetup(ctx, cmd, stderr)
	if err != nil {
		return err
	}
	defer done()
	prof, err := plannedProfile(cmd)
	if err != nil {
		return err
	}
	if err := checkDocuments(ctx, in, o); err != nil {
		return err
	}
	if err := checkBudget(ctx, cmd, c, in, o, prof, nil); err != nil {
		return err
	}
	res, err := in.Run(ctx, o)
	if err != nil {
		return err
	}
	if cmd.Bool("json") {
		return clix.WriteJSON(stdout, clix.Started{BatchID: res.BatchID, Total: res.Total, Queued: res.Enqueued, Skipped: res.Skipped, Kinds: res.Kinds})
	}
	ui.Say(ctx, stderr, in.Logger, fmt.Sprintf("batch %s: %d items (%d queued, %d skipped)", res.BatchID, res.Total, res.Enqueued, res.Skipped), "batch_id", res.BatchID)
	fmt.Fprintln(stdout, res.BatchID)
	return nil
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
	if o, err = batchOptions(cmd, batchSpec(cmd, sources, prof), prof); err != nil {
		return nil, nil, o, nil, err
	}
	if c, err = connect(ctx, cmd, false, stderr); err != nil {
		return nil, nil, o, nil, err
	}
	in = &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log, Feeds: feed.New(c.rdb, "")}
	return in, c, o, c.Close, nil
}

// batchSpec is the batch the flags and arguments ask for, made for prof.
func batchSpec(cmd *cli.Command, sources []string, prof llm.Profile) jobs.Spec {
	return jobs.Spec{Sources: sources, Out: cmd.String("out"), Task: cmd.String("task"), Queue: cmd.String("queue"),
		Options: jobs.Options{Language: cmd.String("language"), MaxOutputTokens: cmd.Int("max-output-tokens"),
			Products: cmd.String("products"), ModelMode: cmd.String("model-mode"), KeepText: cmd.Bool("keep-text"), Fallback: cmd.StringSlice("fallback")},
		Include: cmd.StringSlice("include"), Exclude: cmd.StringSlice("exclude"), MaxSize: clix.SizeOf(cmd, "max-size"),
		MaxRetry: cmd.Int("max-retry"), MaxQueued: cmd.Int("max-queued"), Force: cmd.Bool("force"), TrustContent: cmd.Bool("trust-content"), Provider: prof.Provider, Model: prof.Model,
		Tenant: cmd.String("tenant"), Webhook: cmd.String("webhook")}
}

// batchOptions checks spec (a refusal is a usage error naming the flag)
// and that prof can do what it asks (summaries, the batch API), and adds
// the --prompt overrides its results are fingerprinted with.
func batchOptions(cmd *cli.Command, spec jobs.Spec, prof llm.Profile) (ingest.Options, error) {
	var se *speccheck.Error
	if err := speccheck.Validate(spec); errors.As(err, &se) {
		return ingest.Options{}, &exitError{code: exitUsage, msg: "--" + strings.ReplaceAll(se.Field, "_", "-") + ": " + se.Msg}
	}
	if err := checkTaskForModel(spec.Task, prof); err != nil {
		return ingest.Options{}, err
	}
	if err := checkImageTransport(cmd, spec.Out, prof); err != nil {
		return ingest.Options{}, err
	}
	if err := providers.CheckFallbacks(cmd.String("profiles"), spec.Fallback); err != nil {
		return ingest.Options{}, &exitError{code: exitUsage, msg: "--fallback: " + err.Error()}
	}
	if spec.ModelMode == jobs.ModelBatch && prof.BatchAPI == "" {
		return ingest.Options{}, &exitError{code: exitUsage, msg: fmt.Sprintf("--model-mode batch: the model's provider (%s) has no batch API that llamapipe uses; use --model-mode online or auto", prof.Provider)}
	}
	ps, err := loadPrompts(cmd)
	return ingest.Options{Spec: spec, Prompts: ps, NoDocuments: llm.NoDocuments(prof)}, err
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
	plan, err := in.Plan(ctx, o, estimate.New(prof, estimate.Options{MaxOutputTokens: o.MaxOutputTokens}), ingest.PlanOptions{})
	if err != nil {
		return fmt.Errorf("estimate the batch for its tenant's budget: %w", err)
	}
	est := tenants.Spend{Cost: plan.All.Cost, Tokens: plan.All.InputTokens + plan.All.OutputTokens}
	if err := b.CheckEstimate(ctx, o.Tenant, est, plan.Currency); err != nil {
		if errors.Is(err, tenants.ErrOverBudget) {
			return &exitError{code: exitRefused, msg: "batch refused: " + err.Error()}
		}
		return err
	}
	return nil
}
