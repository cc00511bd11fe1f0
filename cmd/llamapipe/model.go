package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/worker/caption"
	"github.com/llamapipe/llamapipe/worker/metrics"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/providers"
	"github.com/llamapipe/llamapipe/worker/llm/ratelimit"
)

// tenantsFlag is the tenants file of ingest, run and worker.
func tenantsFlag() cli.Flag {
	return &cli.StringFlag{Name: "tenants", Usage: "tenants file (YAML): each tenant's share of the model and daily and monthly budgets in money or tokens; re-read when it changes (see the README)", Sources: env("TENANTS")}
}

// openTenants opens the --tenants file with the spend ledger in c's Redis;
// nil without the flag.
func openTenants(cmd *cli.Command, c *conn, log *slog.Logger) (*tenants.Budgets, error) {
	path := cmd.String("tenants")
	if path == "" {
		return nil, nil
	}
	f, err := tenants.Open(path, log)
	if err != nil {
		return nil, &exitError{code: exitUsage, msg: "--tenants: " + err.Error()}
	}
	return &tenants.Budgets{File: f, Ledger: tenants.NewLedger(c.rdb, ""), Tracker: c.tracker}, nil
}

// openModel opens the configured model client, sharing its rate limit
// through the process's Redis, behind the tenants' fair-share gate when
// budgets is set.
func openModel(ctx context.Context, cmd *cli.Command, c *conn, m *metrics.Metrics, budgets *tenants.Budgets) (llm.Client, error) {
	cfg, err := clix.ProviderConfig(cmd)
	if err != nil {
		return nil, err
	}
	cfg.Redis = c.rdb
	cfg.Metrics = m
	model, err := providers.Open(ctx, cfg)
	if err != nil {
		return nil, &exitError{code: exitUsage, msg: "model: " + err.Error()}
	}
	if err := budgets.CheckCurrency(model.Profile().Prices.Currency); err != nil {
		return nil, &exitError{code: exitUsage, msg: "--tenants: " + err.Error()}
	}
	return ratelimit.TenantGate(model, c.rdb, budgets, cmd.Int("concurrency"), m.Deferred), nil
}

// plannedProfile resolves the profile a batch is planned for without
// opening a client (ingest sends nothing to the model).
func plannedProfile(cmd *cli.Command) (llm.Profile, error) {
	cfg, err := clix.ProviderConfig(cmd)
	if err != nil {
		return llm.Profile{}, err
	}
	p, err := providers.Profile(cfg)
	if err != nil {
		return llm.Profile{}, &exitError{code: exitUsage, msg: "model: " + err.Error()}
	}
	return p, nil
}

// checkTaskForModel refuses --task summarize for a model that takes no
// text-only requests; under --task auto the refusal follows what is listed
// (ingest.Ingester.CheckDocuments).
func checkTaskForModel(task string, p llm.Profile) error {
	if why := llm.NoDocuments(p); why != "" && task == jobs.TaskSummarize {
		return &exitError{code: exitUsage, msg: fmt.Sprintf("%s: %v", why, ingest.ErrNoDocuments)}
	}
	return nil
}

// checkImageTransport refuses --image-transport url for an output that
// cannot presign URLs (caption.Transport), before anything is queued.
func checkImageTransport(cmd *cli.Command, out string, prof llm.Profile) error {
	if !prof.ImageURLRequired || cmd.String("out") == "" {
		return nil
	}
	st, err := opener(cmd)(context.Background(), out)
	if err != nil {
		return nil // the output's own checks say what is wrong with it
	}
	if c, ok := st.(io.Closer); ok {
		defer c.Close()
	}
	if _, err := caption.Transport(prof, st); err != nil {
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	return nil
}

func checkDocuments(ctx context.Context, in *ingest.Ingester, o ingest.Options) error {
	if err := in.CheckDocuments(ctx, o); errors.Is(err, ingest.ErrNoDocuments) {
		return &exitError{code: exitUsage, msg: err.Error()}
	} else {
		return err
	}
}
