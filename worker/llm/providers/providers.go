package providers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/bedrock"
	"github.com/llamapipe/llamapipe/worker/llm/dashscope"
	"github.com/llamapipe/llamapipe/worker/llm/offline"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
	"github.com/llamapipe/llamapipe/worker/llm/ratelimit"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

// DefaultAPIKeyEnv is the environment variable the API key is read from
// when Config.APIKeyEnv is empty.
const DefaultAPIKeyEnv = "LLAMAPIPE_API_KEY"

// DashScopeAPIKeyEnv is also accepted for the dashscope provider.
const DashScopeAPIKeyEnv = "DASHSCOPE_API_KEY"

// Config selects and configures a provider.
type Config struct {
	// Provider is "openai", "dashscope", "bedrock" or "offline". Empty: the
	// preset's.
	Provider string
	// Preset names a built-in or ProfilesFile profile (see llm.Builtins).
	// Empty: the provider's default.
	Preset string
	// BaseURL and Model override the preset's. Default: the preset's.
	BaseURL, Model string
	// APIKeyEnv names the environment variable holding the key. Default
	// LLAMAPIPE_API_KEY; for dashscope DASHSCOPE_API_KEY is tried next.
	APIKeyEnv string
	// APIKeyFile, when set, is read instead of the environment (surrounding
	// white space trimmed).
	APIKeyFile string
	// ProfilesFile is a YAML file of profiles merged over the builtins
	// (llm.LoadProfiles). Default none.
	ProfilesFile string
	// ExtraHeaders are sent with every request (openai, dashscope).
	ExtraHeaders map[string]string
	// MaxOutputTokens, when > 0, lowers the profile's answer cap (and thus
	// the default for requests that set none).
	MaxOutputTokens int
	// Temperature is the default for requests that set none. Default nil:
	// the service's.
	Temperature *float64
	// RPM and TPM are the shared requests/tokens per minute. Zero: the
	// profile's known limits (Profile.RPM, TPM), else none. They apply
	// only with Redis.
	RPM, TPM int
	// Redis holds the shared rate-limit state. Nil: no shared limit.
	Redis redis.UniversalClient
	// RateLimitKey names the shared quota in Redis. Default
	// "llamapipe:llm:<preset or provider>:<model>".
	RateLimitKey string
	// HTTPClient carries the requests. Default: each provider's own.
	HTTPClient *http.Client
	// Timeout bounds one call. Default: each provider's (2 minutes).
	Timeout time.Duration
	// Metrics, when set, records every model request (latency without the
	// rate limit's waiting, tokens, cost, errors) and rate-limit waits.
	Metrics *metrics.Metrics
	// ImageDetail overrides the profile's image detail ("low", "high" or
	// "auto"; Qianfan v2 documents low and high). Default: the profile's.
	ImageDetail string
	// ImageTransport overrides the profile's: "inline" sends images in the
	// request; "url" sends presigned URLs of the prepared images and makes
	// them required (an output that cannot presign fails its images rather
	// than sending them inline; dashscope only). Default "": the profile's
	// (dashscope presets: url where the output can presign, else inline).
	ImageTransport string
	// FallbackAfter, FallbackMaxWait and FallbackCoolDown override the
	// profile's (its fallback_after, fallback_max_wait, fallback_cool_down:
	// the FallbackPolicy of a chain it heads). Zero: the profile's.
	FallbackAfter                     int
	FallbackMaxWait, FallbackCoolDown time.Duration
	// Region and Endpoint override Bedrock's region and endpoint URL.
	// Default: the preset's region and AWS's endpoint.
	Region, Endpoint string
}

// Open builds the client cfg describes. It makes no network call (Bedrock
// reads the AWS configuration and credential chain lazily, on first use).
func Open(ctx context.Context, cfg Config) (llm.Client, error) {
	p, err := Profile(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil && (p.Provider == llm.ProviderOpenAI || p.Provider == llm.ProviderDashScope) {
		// Go's default keeps 2 idle connections per host: far fewer than a
		// worker's concurrent requests to one provider. (Bedrock keeps the
		// AWS SDK's own client, which has its own pool and CA handling.)
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 512, 256
		cfg.HTTPClient = &http.Client{Transport: t}
	}
	var c llm.Client
	switch p.Provider {
	case llm.ProviderOffline:
		c = offline.New(offline.Options{ContextTokens: p.ContextTokens})
	case llm.ProviderOpenAI:
		key, err := apiKey(cfg, p)
		if err != nil {
			return nil, err
		}
		c, err = openai.New(openai.Options{
			Profile: p, APIKey: key, ExtraHeaders: cfg.ExtraHeaders, HTTPClient: cfg.HTTPClient,
			Timeout: cfg.Timeout, Temperature: cfg.Temperature,
		})
		if err != nil {
			return nil, err
		}
	case llm.ProviderDashScope:
		key, err := apiKey(cfg, p)
		if err != nil {
			return nil, err
		}
		c, err = dashscope.New(dashscope.Options{
			Profile: p, APIKey: key, ExtraHeaders: cfg.ExtraHeaders, HTTPClient: cfg.HTTPClient,
			Timeout: cfg.Timeout, Temperature: cfg.Temperature,
		})
		if err != nil {
			return nil, err
		}
	case llm.ProviderBedrock:
		c, err = bedrock.New(ctx, bedrock.Options{
			Profile: p, Endpoint: cfg.Endpoint, HTTPClient: cfg.HTTPClient,
			Timeout: cfg.Timeout, Temperature: cfg.Temperature,
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown provider %q", p.Provider)
	}
	if cfg.Metrics != nil {
		c = metrics.Instrument(c, cfg.Metrics)
	}
	key := cfg.RateLimitKey
	if key == "" {
		key = jobs.ModelQuotaName(cmp.Or(p.Preset, p.Provider), p.Model)
	}
	if cfg.Redis != nil && p.Provider == llm.ProviderOpenAI {
		// What the provider's rate-limit headers say, shared by every worker.
		c = ratelimit.Learn(c, cfg.Redis, key)
	}
	rpm, tpm := cmp.Or(cfg.RPM, p.RPM), cmp.Or(cfg.TPM, p.TPM) // default: the profile's known limits
	if cfg.Redis != nil && (rpm > 0 || tpm > 0) {
		var onWait func(time.Duration)
		if cfg.Metrics != nil {
			onWait = cfg.Metrics.RateLimitWait
		}
		c = ratelimit.WrapObserved(c, cfg.Redis, key, rpm, tpm, onWait)
	}
	return c, nil
}

// Profile resolves the profile cfg describes — limits and prices — without
// opening a client or reading a key (for planning and up-front checks).
func Profile(cfg Config) (llm.Profile, error) {
	profiles, err := llm.LoadProfiles(cfg.ProfilesFile)
	if err != nil {
		return llm.Profile{}, err
	}
	p, err := llm.ResolveProfile(profiles, cfg.Preset, cfg.Provider, cfg.BaseURL, cfg.Model)
	if err != nil {
		return llm.Profile{}, err
	}
	if cfg.MaxOutputTokens > 0 && (p.MaxOutputTokens == 0 || cfg.MaxOutputTokens < p.MaxOutputTokens) {
		p.MaxOutputTokens = cfg.MaxOutputTokens
	}
	if cfg.MaxOutputTokens > 0 && cfg.MaxOutputTokens < p.MinOutputTokens {
		return llm.Profile{}, fmt.Errorf("max output tokens %d is below %s's minimum of %d", cfg.MaxOutputTokens, p.Model, p.MinOutputTokens)
	}
	switch cfg.ImageDetail {
	case "":
	case "low", "high", "auto":
		p.ImageDetail = cfg.ImageDetail
	default:
		return llm.Profile{}, fmt.Errorf("image detail %q: want low, high or auto", cfg.ImageDetail)
	}
	switch cfg.ImageTransport {
	case "":
	case llm.ImageInline:
		p.ImageTransport, p.ImageURLRequired = llm.ImageInline, false
	case llm.ImageURL:
		if p.Provider != llm.ProviderDashScope {
			return llm.Profile{}, fmt.Errorf("image transport url: only the dashscope provider fetches images by URL; %s takes them inline", p.Provider)
		}
		p.ImageTransport, p.ImageURLRequired = llm.ImageURL, true
	default:
		return llm.Profile{}, fmt.Errorf("image transport %q: want inline or url", cfg.ImageTransport)
	}
	if cfg.FallbackAfter < 0 || cfg.FallbackMaxWait < 0 || cfg.FallbackCoolDown < 0 {
		return llm.Profile{}, errors.New("fallback after, max wait and cool-down must not be negative")
	}
	p.FallbackAfter = cmp.Or(cfg.FallbackAfter, p.FallbackAfter)
	p.FallbackMaxWait = cmp.Or(cfg.FallbackMaxWait, p.FallbackMaxWait)
	p.FallbackCoolDown = cmp.Or(cfg.FallbackCoolDown, p.FallbackCoolDown)
	if cfg.Region != "" {
		p.Region = cfg.Region
	}
	return p, nil
}

// apiKey reads the key from APIKeyFile, else the environment. A profile
// with NoAPIKey accepts none.
func apiKey(cfg Config, p llm.Profile) (string, error) {
	if cfg.APIKeyFile != "" {
		data, err := os.ReadFile(cfg.APIKeyFile)
		if err != nil {
			// The path is configuration, not a secret; the content is never shown.
			return "", fmt.Errorf("read API key file: %w", err)
		}
		key := strings.TrimSpace(string(data))
		if key == "" && !p.NoAPIKey {
			return "", fmt.Errorf("API key file %s is empty", cfg.APIKeyFile)
		}
		return key, nil
	}
	names := []string{cfg.APIKeyEnv}
	if cfg.APIKeyEnv == "" {
		names = []string{DefaultAPIKeyEnv}
		if p.Provider == llm.ProviderDashScope {
			names = append(names, DashScopeAPIKeyEnv)
		}
	}
	for _, n := range names {
		if key := strings.TrimSpace(os.Getenv(n)); key != "" {
			return key, nil
		}
	}
	if p.NoAPIKey {
		return "", nil
	}
	name := p.Preset
	if name == "" {
		name = p.Provider
	}
	return "", fmt.Errorf("%s needs an API key: set %s or give an API key file", name, strings.Join(names, " or "))
}

// FallbackKeyEnv is the environment variable a fallback preset's API key
// is read from: LLAMAPIPE_<PRESET>_API_KEY, the preset upper-cased with
// "-" and "." as "_" (LLAMAPIPE_TOGETHER_API_KEY, LLAMAPIPE_DASHSCOPE_INTL_API_KEY).
func FallbackKeyEnv(preset string) string {
	return "LLAMAPIPE_" + strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(preset)) + "_API_KEY"
}

// OpenFallbacks opens a client for each preset of names (a fallback chain's
// later providers), each with its preset's endpoint, model, limits and
// prices and the key in FallbackKeyEnv; they share base's profiles file,
// Redis, metrics, HTTP client and timeout, nothing else of it.
func OpenFallbacks(ctx context.Context, base Config, names []string) (map[string]llm.Client, error) {
	out := make(map[string]llm.Client, len(names))
	for _, n := range names {
		cfg := Config{Preset: n, APIKeyEnv: FallbackKeyEnv(n), ProfilesFile: base.ProfilesFile, Redis: base.Redis,
			Metrics: base.Metrics, HTTPClient: base.HTTPClient, Timeout: base.Timeout, Temperature: base.Temperature}
		c, err := Open(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("fallback %s: %w", n, err)
		}
		out[n] = c
	}
	return out, nil
}

// CheckFallbacks refuses a fallback chain that names a preset twice or one
// that neither the builtins nor profilesFile know.
func CheckFallbacks(profilesFile string, names []string) error {
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("%s is named twice", n)
		}
		if _, err := Profile(Config{Preset: n, ProfilesFile: profilesFile}); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return nil
}
