package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/cmd/llamapipe/ui"
	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs/plan"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/caption"
	"github.com/llamapipe/llamapipe/worker/estimate"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// Planning assumptions, in tokens (see worker/estimate).
const (
	planPromptTokens  = estimate.PromptTokens
	planCaptionOutput = estimate.CaptionOutput
)

func planCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "list what a run would do — items by kind, pages, images, estimated tokens and cost — without sending anything",
		ArgsUsage: "SRC... (folders or s3://bucket/prefix)",
		Flags: concat(clix.Category(clix.CatBatch, batchFlags()), clix.Category(clix.CatModel, append(clix.ProviderFlags(), promptFlag())), clix.Category(clix.CatWorker, []cli.Flag{
			&cli.StringFlag{Name: "pdf-passwords", Usage: "JSON file {\"key or file name\": \"password\"} for encrypted PDFs", Sources: env("PDF_PASSWORDS")},
			&cli.IntFlag{Name: "image-max-side", Value: 1344, Usage: "long side of images sent to the model, in pixels", Sources: env("IMAGE_MAX_SIDE")},
		}), clix.Category(clix.CatTenancy, []cli.Flag{tenantsFlag()}), []cli.Flag{clix.JSONFlag()}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			sources, err := needArgs(cmd, "source")
			if err != nil {
				return err
			}
			prof, err := plannedProfile(cmd)
			if err != nil {
				return err
			}
			passwords, err := clix.ReadSecretMap(cmd.String("pdf-passwords"))
			if err != nil {
				return &exitError{code: exitUsage, msg: "--pdf-passwords: " + err.Error()}
			}
			spec := batchSpec(cmd, sources, prof)
			if spec.Out == "" {
				// Planning writes nothing: any location that is not a source,
				// and without an output there are no earlier results to keep.
				spec.Out = filepath.Join(os.TempDir(), "llamapipe-plan-writes-nothing")
				spec.Force = true
			}
			o, err := batchOptions(cmd, spec, prof)
			if err != nil {
				return err
			}
			maxSide := cmd.Int("image-max-side")
			if maxSide <= 0 {
				maxSide = -1 // as they are
			}
			in := &ingest.Ingester{Open: opener(cmd)}
			est := estimate.New(prof, estimate.Options{
				MaxOutputTokens: o.MaxOutputTokens, ImageMaxSide: maxSide,
				PDFPasswords: passwords,
			})
			plan, err := in.Plan(ctx, o, est, ingest.PlanOptions{Sample: -1})
			if err != nil {
				return err
			}
			if cmd.Bool("json") {
				return clix.WriteJSON(stdout, plan)
			}
			ui.PrintPlan(stdout, prof, plan)
			printImageTransport(ctx, cmd, stdout, prof)
			return planBudget(ctx, cmd, stdout, stderr, o.Tenant, plan)
		},
	}
}

// planBudget compares the plan with its tenant's remaining budget, when a
// tenants file is given (and Redis, which keeps the spend).
func planBudget(ctx context.Context, cmd *cli.Command, stdout, stderr io.Writer, tenant string, plan plan.Plan) error {
	if cmd.String("tenants") == "" {
		return nil
	}
	if cmd.String("redis-url") == "" {
		fmt.Fprintln(stdout, "\nBudget: give --redis-url (where the tenants' spend is kept) to compare the plan with what is left")
		return nil
	}
	c, err := connect(ctx, cmd, false, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := openTenants(cmd, c, nil)
	if err != nil {
		return err
	}
	st, err := b.Status(ctx, tenant)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nTenant %s: %s\n", cmp.Or(tenant, "(none)"), st.Summary(plan.Currency))
	est := tenants.Spend{Cost: plan.All.Cost, Tokens: plan.All.InputTokens + plan.All.OutputTokens}
	if err := b.CheckEstimate(ctx, tenant, est, plan.Currency); err != nil {
		fmt.Fprintf(stdout, "Over budget: %v\n", err)
		return nil
	}
	fmt.Fprintln(stdout, "Within budget.")
	return nil
}

// printImageTransport says how images go to the model, where its profile
// prefers URLs (caption.Describe).
func printImageTransport(ctx context.Context, cmd *cli.Command, stdout io.Writer, prof llm.Profile) {
	var out storage.Store
	if loc := cmd.String("out"); loc != "" {
		if st, err := opener(cmd)(ctx, loc); err == nil {
			out = st
			if c, ok := st.(io.Closer); ok {
				defer c.Close()
			}
		}
	}
	if note := caption.Describe(prof, out); note != "" {
		fmt.Fprintln(stdout, note)
	}
}
