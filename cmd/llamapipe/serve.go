package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/ingest/api"
	"github.com/llamapipe/llamapipe/ingest/cancel"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/feed"
	"github.com/llamapipe/llamapipe/jobs/redisconn"
	"github.com/llamapipe/llamapipe/worker/estimate"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

// envAPITokens holds API bearer tokens ("TOKEN TENANT" per line), read
// directly, never through a flag value.
const envAPITokens = "LLAMAPIPE_API_TOKENS"

func serveCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the HTTP JSON API (/v1): submit, list, follow, cancel and retry batches; described at /v1/openapi.yaml",
		Description: "Every request needs a bearer token bound to a tenant: --tokens-file or " + envAPITokens +
			" (one \"TOKEN TENANT\" per line); a token sees only its tenant's batches. Sources must lie under an --allow " +
			"prefix and outputs under an --allow-out prefix (default: the --allow prefixes), so callers cannot read " +
			"arbitrary folders or buckets; with --tenants, each tenant is also held to its own sources and outputs in that file " +
			"(a tenant with none listed gets the file's default, else nothing: 403). Give serve the same --provider/--preset/--model and --prompt as the workers, " +
			"so unchanged items are recognised. A submit's completion webhook must start with a --webhook-allow prefix " +
			"(none: webhooks are refused); the workers sign and send it. Submits are answered with the plan estimate " +
			"(--plan-sample items exactly, the rest extrapolated by size).",
		Flags: concat([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8081", Usage: "address to serve on, HOST:PORT", Sources: env("API_LISTEN")},
			&cli.StringFlag{Name: "tokens-file", Usage: "file of accepted bearer tokens, one \"TOKEN TENANT\" per line (also " + envAPITokens + ")", Sources: env("API_TOKENS_FILE")},
			&cli.StringSliceFlag{Name: "allow", Usage: "location prefix sources must lie under: s3://bucket/prefix or an absolute folder (repeatable; required)", Sources: env("API_ALLOW")},
			&cli.StringSliceFlag{Name: "allow-out", Usage: "location prefix outputs must lie under (repeatable; default: the --allow prefixes)", Sources: env("API_ALLOW_OUT")},
			&cli.GenericFlag{Name: "max-size", Value: clix.NewSize(512 << 20), Usage: "skip objects larger than this: 10MB, 512MiB, 1GiB or bytes", Sources: env("MAX_SIZE")},
			&cli.IntFlag{Name: "max-retry", Value: 5, Usage: "retries of an item after a transient failure", Sources: env("MAX_RETRY")},
			&cli.StringSliceFlag{Name: "webhook-allow", Usage: "URL prefix a submit's completion webhook must start with, e.g. https://hooks.example.com/llamapipe/ (repeatable; none: submits with a webhook are refused)", Sources: env("WEBHOOK_ALLOW")},
			maxQueuedFlag(),
			&cli.IntFlag{Name: "plan-sample", Value: ingest.DefaultPlanSample, Usage: "items of a submit estimated exactly for its answer's plan; the rest are extrapolated by size (negative: all)", Sources: env("PLAN_SAMPLE")},
		}, clix.ProviderFlags(), []cli.Flag{promptFlag(), tenantsFlag()}),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			log, err := newLogger(cmd, stderr, slog.LevelInfo)
			if err != nil {
				return err
			}
			tokens, err := apiTokens(cmd)
			if err != nil {
				return err
			}
			if len(cmd.StringSlice("allow")) == 0 {
				return &exitError{code: exitUsage, msg: "serve: give at least one --allow prefix (s3://bucket/prefix or an absolute folder) that sources must lie under"}
			}
			prof, err := plannedProfile(cmd)
			if err != nil {
				return err
			}
			ps, err := loadPrompts(cmd)
			if err != nil {
				return err
			}
			profiles, err := llm.LoadProfiles(cmd.String("profiles"))
			if err != nil {
				return &exitError{code: exitUsage, msg: "--profiles: " + err.Error()}
			}
			c, err := connect(ctx, cmd, false, stderr)
			if err != nil {
				return err
			}
			defer c.Close()
			redisconn.WarnDurability(ctx, c.rdb, log)
			budgets, err := openTenants(cmd, c, log)
			if err != nil {
				return err
			}
			insp := asynq.NewInspector(c.opt)
			defer insp.Close()
			in := &ingest.Ingester{Open: opener(cmd), Queue: c.client(), Tracker: c.tracker, Logger: log, Feeds: feed.New(c.rdb, "")}
			cancel := func(ctx context.Context, batch string, now time.Time) (int, error) {
				return cancel.Batch(ctx, c.tracker, insp, c.client(), batch, now)
			}
			srv, err := api.New(api.Config{
				Tenants: budgets,
				Tracker: c.tracker, Redis: c.rdb, Ingester: in, Cancel: cancel,
				Tokens: tokens, Allow: cmd.StringSlice("allow"), AllowOut: cmd.StringSlice("allow-out"),
				Defaults: ingest.Options{Prompts: ps, Spec: jobs.Spec{Provider: prof.Provider, Model: prof.Model,
					MaxSize: clix.SizeOf(cmd, "max-size"), MaxRetry: cmd.Int("max-retry"), MaxQueued: cmd.Int("max-queued"),
					Options: jobs.Options{MaxOutputTokens: cmd.Int("max-output-tokens")}}},
				AllowWebhooks: cmd.StringSlice("webhook-allow"),
				Profiles:      apiProfiles(prof, profiles, estimate.Options{MaxOutputTokens: cmd.Int("max-output-tokens")}),
				PlanSample:    cmd.Int("plan-sample"),
				Logger:        log,
				Shutdown:      ctx, // a listing still running at shutdown ends its batch cancelled
			})
			if err != nil {
				return &exitError{code: exitUsage, msg: err.Error()}
			}
			l, err := net.Listen("tcp", cmd.String("listen"))
			if err != nil {
				return &exitError{code: exitFailed, msg: fmt.Sprintf("serve: %v", err)}
			}
			log.Info("api listening", "addr", l.Addr().String(), "tokens", len(tokens), "allow", cmd.StringSlice("allow"))
			fmt.Fprintf(stdout, "api on http://%s/v1/\n", l.Addr())
			return metrics.Serve(ctx, l, srv, log)
		},
	}
}

// apiProfiles resolves the model profile a submit names for the API: ""
// is the workers' (prof), another name one of profiles (nil:
// llm.Builtins()); each is estimated by worker/estimate with opts.
func apiProfiles(prof llm.Profile, profiles map[string]llm.Profile, opts estimate.Options) func(string) (api.Profile, error) {
	if prof.Provider == "" {
		prof = llm.Profile{Provider: llm.ProviderOffline, TextOnly: true}
	}
	if profiles == nil {
		profiles = llm.Builtins()
	}
	return func(name string) (api.Profile, error) {
		p := prof
		if name != "" {
			var err error
			if p, err = llm.ResolveProfile(profiles, name, "", "", ""); err != nil {
				return api.Profile{}, err
			}
		}
		return api.Profile{Name: cmp.Or(p.Preset, p.Provider), NoDocuments: llm.CheckRequestAllowed(p, false),
			BatchAPI: p.BatchAPI != "", Estimator: estimate.New(p, opts)}, nil
	}
}

// apiTokens gathers the API's tokens from --tokens-file and the
// environment; it refuses to go on without any. Tokens never appear in
// errors or logs.
func apiTokens(cmd *cli.Command) (map[string]string, error) {
	tokens := map[string]string{}
	if f := cmd.String("tokens-file"); f != "" {
		fh, err := os.Open(f)
		if err != nil {
			return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("--tokens-file: %v", err)}
		}
		m, err := api.ParseTokens(fh, "token file "+f)
		_ = fh.Close()
		if err != nil {
			return nil, &exitError{code: exitUsage, msg: "--tokens-file: " + err.Error()}
		}
		maps.Copy(tokens, m)
	}
	if s := os.Getenv(envAPITokens); strings.TrimSpace(s) != "" {
		m, err := api.ParseTokens(strings.NewReader(s), envAPITokens)
		if err != nil {
			return nil, &exitError{code: exitUsage, msg: err.Error()}
		}
		for tok, tenant := range m {
			if old, ok := tokens[tok]; ok && old != tenant {
				return nil, &exitError{code: exitUsage, msg: envAPITokens + ": a token of --tokens-file is bound to another tenant there (content not shown)"}
			}
			tokens[tok] = tenant
		}
	}
	if len(tokens) == 0 {
		return nil, &exitError{code: exitUsage, msg: "serve: " + api.ErrNoTokens.Error() +
			": set --tokens-file or " + envAPITokens}
	}
	return tokens, nil
}
