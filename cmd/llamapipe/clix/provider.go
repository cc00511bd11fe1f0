package clix

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/worker/llm/providers"
)

// Env is the LLAMAPIPE_<name> environment variable a flag reads.
func Env(name string) cli.ValueSourceChain { return cli.EnvVars("LLAMAPIPE_" + name) }

// ProviderFlags are the model flags of every command that reaches a model
// (or plans for one).
func ProviderFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "provider", Usage: "model provider: openai (any OpenAI-compatible API), dashscope, bedrock or offline (no service, no key; the default without a --preset)", Sources: Env("PROVIDER")},
		&cli.StringFlag{Name: "preset", Usage: "ready provider settings: llama-api, groq, together, openrouter, qianfan, reseller, vllm, ollama, dashscope, dashscope-intl, bedrock-scout, bedrock-maverick", Sources: Env("PRESET")},
		&cli.StringFlag{Name: "base-url", Usage: "provider endpoint (OpenAI-compatible: .../v1; DashScope: the host root)", Sources: Env("BASE_URL")},
		&cli.StringFlag{Name: "model", Usage: "model id, e.g. llama-4-scout or meta-llama/llama-4-scout", Sources: Env("MODEL")},
		&cli.StringFlag{Name: "api-key-env", Usage: "name of the environment variable holding the API key (default LLAMAPIPE_API_KEY)", Sources: Env("API_KEY_ENV")},
		&cli.StringFlag{Name: "api-key-file", Usage: "file holding the API key (instead of an environment variable)", Sources: Env("API_KEY_FILE")},
		&cli.StringFlag{Name: "profiles", Usage: "YAML file adding or overriding model profiles (limits and prices)", Sources: Env("PROFILES")},
		&cli.StringSliceFlag{Name: "header", Usage: "extra HTTP header for the provider, NAME=VALUE (repeatable)", Sources: Env("HEADERS")},
		&cli.StringSliceFlag{Name: "fallback", Usage: "presets that answer, in this order, while the provider is down (connection errors, a run of 5xx, a long 429); keys from LLAMAPIPE_<PRESET>_API_KEY; online items only", Sources: Env("FALLBACK")},
		&cli.IntFlag{Name: "fallback-after", Usage: "connection errors or 5xx answers in a row that take the provider down (0: the profile's fallback_after, else 3)", Sources: Env("FALLBACK_AFTER")},
		&cli.DurationFlag{Name: "fallback-max-wait", Usage: "longest 429 wait (Retry-After) worth waiting for; a longer one takes the provider down for that wait (0: the profile's fallback_max_wait, else 2m)", Sources: Env("FALLBACK_MAX_WAIT")},
		&cli.DurationFlag{Name: "fallback-cool-down", Usage: "how long a down provider is left alone before calls go to it again (0: the profile's fallback_cool_down, else 5m)", Sources: Env("FALLBACK_COOL_DOWN")},
		&cli.IntFlag{Name: "rpm", Usage: "requests per minute shared by all workers of this provider and model (0: the profile's known limit, else none)", Sources: Env("RPM")},
		&cli.IntFlag{Name: "tpm", Usage: "tokens per minute shared by all workers of this provider and model (0: the profile's known limit, else none)", Sources: Env("TPM")},
		&cli.StringFlag{Name: "image-detail", Usage: "image detail sent with each image: low, high or auto (default: the profile's; Qianfan v2 takes low or high)", Sources: Env("IMAGE_DETAIL")},
		&cli.StringFlag{Name: "image-transport", Usage: "how images reach the model: url (a presigned GET URL of the prepared image in the s3:// output's work area; DashScope only; a local output is refused) or inline (base64 in the request); default: the profile's (DashScope presets: url when the output is on S3, else inline)", Sources: Env("IMAGE_TRANSPORT")},
		&cli.IntFlag{Name: "max-output-tokens", Usage: "cap on each answer's tokens (0: the profile's default)", Sources: Env("MAX_OUTPUT_TOKENS")},
		&cli.FloatFlag{Name: "temperature", Value: -1, Usage: "sampling temperature (negative: the provider's default)", Sources: Env("TEMPERATURE")},
	}
}

// ProviderConfig reads ProviderFlags into a provider configuration; a
// malformed --header is a *UsageError.
func ProviderConfig(cmd *cli.Command) (providers.Config, error) {
	cfg := providers.Config{
		Provider:         cmd.String("provider"),
		Preset:           cmd.String("preset"),
		BaseURL:          cmd.String("base-url"),
		Model:            cmd.String("model"),
		APIKeyEnv:        cmd.String("api-key-env"),
		APIKeyFile:       cmd.String("api-key-file"),
		ProfilesFile:     cmd.String("profiles"),
		MaxOutputTokens:  cmd.Int("max-output-tokens"),
		RPM:              cmd.Int("rpm"),
		TPM:              cmd.Int("tpm"),
		ImageDetail:      cmd.String("image-detail"),
		ImageTransport:   cmd.String("image-transport"),
		FallbackAfter:    cmd.Int("fallback-after"),
		FallbackMaxWait:  cmd.Duration("fallback-max-wait"),
		FallbackCoolDown: cmd.Duration("fallback-cool-down"),
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
			return cfg, &UsageError{Msg: fmt.Sprintf("--header %q: use NAME=VALUE", name)}
		}
		if cfg.ExtraHeaders == nil {
			cfg.ExtraHeaders = map[string]string{}
		}
		cfg.ExtraHeaders[strings.TrimSpace(name)] = value
	}
	return cfg, nil
}
