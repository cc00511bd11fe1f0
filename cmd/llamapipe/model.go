package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/tenants"
	"github.com/llamapipe/llamapipe/worker/metrics"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/providers"
	"github.com/llamapipe/llamapipe/worker/llm/ratelimit"
)

func providerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "provider", Usage: "model provider: openai (any OpenAI-compatible API), dashscope, bedrock or offline (no service, no key; the default without a --preset)", Sources: env("PROVIDER")},
		&cli.StringFlag{Name: "preset", Usage: "ready provider settings: llama-api, groq, together, openrouter, qianfan, reseller, vllm, ollama, dashscope, dashscope-intl, bedrock-scout, bedrock-maverick", Sources: env("PRESET")},
		&cli.StringFlag{Name: "base-url", Usage: "provider endpoint (OpenAI-compatible: .../v1; DashScope: the host root)", Sources: env("BASE_URL")},
		&cli.StringFlag{Name: "model", Usage: "model id, e.g. llama-4-scout or meta-llama/llama-4-scout", Sources: env("MODEL")},
		&cli.StringFlag{Name: "api-key-env", Usage: "name of the environment variable holding the API key (default LLAMAPIPE_API_KEY)", Sources: env("API_KEY_ENV")},
		&cli.StringFlag{Name: "api-key-file", Usage: "file holding the API key (instead of an environment variable)", Sources: env("API_KEY_FILE")},
		&cli.StringFlag{Name: "profiles", Usage: "YAML file adding or overriding model profiles (limits and prices)", Sources: env("PROFILES")},
		&cli.StringSliceFlag{Name: "header", Usage: "extra HTTP header for the provider, NAME=VALUE (repeatable)", Sources: env("HEADERS")},
		&cli.StringSliceFlag{Name: "fallback", Usage: "presets that answer, in this order, while the provider is down (connection errors, a run of 5xx, a long 429); keys from LLAMAPIPE_<PRESET>_API_KEY; online items only", Sources: env("FALLBACK")},
		&cli.DurationFlag{Name: "fallback-cool-down", Value: 5 * time.Minute, Usage: "how long a down provider is left alone before calls go to it again", Sources: env("FALLBACK_COOL_DOWN")},
		&cli.IntFlag{Name: "rpm", Usage: "requests per minute shared by all workers of this provider and model (0: the profile's known limit, else none)", Sources: env("RPM")},
		&cli.IntFlag{Name: "tpm", Usage: "tokens per minute shared by all workers of this provider and model (0: the profile's known limit, else none)", Sources: env("TPM")},
		&cli.StringFlag{Name: "image-detail", Usage: "image detail sent with each image: low, high or auto (default: the profile's; Qianfan v2 takes low or high)", Sources: env("IMAGE_DETAIL")},
		&cli.IntFlag{Name: "max-output-tokens", Usage: "cap on each answer's tokens (0: the profile's default)", Sources: env("MAX_OUTPUT_TOKENS")},
		&cli.FloatFlag{Name: "temperature", Value: -1, Usage: "sampling temperature (negative: the provider's default)", Sources: env("TEMPERATURE")},
	}
}

func providerConfig(cmd *cli.Command) (providers.Config, error) {
	cfg := providers.Config{
		Provider:        cmd.String("provider"),
		Preset:          cmd.String("preset"),
		BaseURL:         cmd.String("base-url"),
		Model:           cmd.String("model"),
		APIKeyEnv:       cmd.String("api-key-env"),
		APIKeyFile:      cmd.String("api-key-file"),
		ProfilesFile:    cmd.String("profiles"),
		MaxOutputTokens: cmd.Int("max-output-tokens"),
		RPM:             cmd.Int("rpm"),
		TPM:             cmd.Int("tpm"),
		ImageDetail:     cmd.String("image-detail"),
	}
	if cfg.Provider == "" && cfg.Preset == "" {
		cfg.Provider = "offline"
	}
	if t := cmd.Float("temperature"); t >= 0 {
		cfg.Temperature = &t
	}
	for _, h := range cmd.StringSlice("header") {
		name, value, ok := strings.Cut(h, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return cfg, &exitError{code: exitUsage, msg: fmt.Sprintf("--header %q: use NAME=VALUE", name)}
		}
		if cfg.ExtraHeaders == nil {
			cfg.ExtraHeaders = map[string]string{}
		}
		cfg.ExtraHeaders[strings.TrimSpace(name)] = value
	}
	return cfg, nil
}

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
	cfg, err := providerConfig(cmd)
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
	cfg, err := providerConfig(cmd)
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

func checkDocuments(ctx context.Context, in *ingest.Ingester, o ingest.Options) error {
	if err := in.CheckDocuments(ctx, o); errors.Is(err, ingest.ErrNoDocuments) {
		return &exitError{code: exitUsage, msg: err.Error()}
	} else {
		return err
	}
}
