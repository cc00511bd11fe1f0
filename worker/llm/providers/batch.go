package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/batchapi"
	"github.com/llamapipe/llamapipe/worker/llm/bedrock"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

// BatchOptions configure OpenBatch.
type BatchOptions struct {
	// Store and Prefix are where Bedrock batch input and output files live
	// (an S3 location Bedrock can read and write). Bedrock only.
	Store  storage.Store
	Prefix string
	// RoleARN is the service role Bedrock assumes for the job. Bedrock only.
	RoleARN string
	// Logger receives job IDs and states. Nil discards them.
	Logger *slog.Logger
}

// ErrNoBatchAPI reports a profile whose provider offers no batch API that
// llamapipe knows (Profile.BatchAPI empty).
var ErrNoBatchAPI = errors.New("the model's provider has no batch API")

// OpenBatch opens the batch API of the profile cfg describes (its BatchAPI),
// with the same key, base URL and headers as the online client.
func OpenBatch(ctx context.Context, cfg Config, o BatchOptions) (batchapi.Client, error) {
	p, err := Profile(cfg)
	if err != nil {
		return nil, err
	}
	switch p.BatchAPI {
	case llm.BatchOpenAI:
		key, err := apiKey(cfg, p)
		if err != nil {
			return nil, err
		}
		online, err := openai.New(openai.Options{Profile: p, APIKey: key, ExtraHeaders: cfg.ExtraHeaders,
			HTTPClient: cfg.HTTPClient, Timeout: cfg.Timeout, Temperature: cfg.Temperature})
		if err != nil {
			return nil, err
		}
		return batchapi.NewOpenAI(batchapi.OpenAIOptions{Online: online, Logger: o.Logger})
	case llm.BatchBedrock:
		if o.Store == nil || o.RoleARN == "" {
			return nil, errors.New("bedrock batch inference needs an S3 work location and a service role (--batch-work, --batch-role-arn)")
		}
		online, err := bedrock.New(ctx, bedrock.Options{Profile: p, Endpoint: cfg.Endpoint, HTTPClient: cfg.HTTPClient,
			Timeout: cfg.Timeout, Temperature: cfg.Temperature})
		if err != nil {
			return nil, err
		}
		return batchapi.NewBedrock(ctx, batchapi.BedrockOptions{Online: online, Store: o.Store, Prefix: o.Prefix,
			RoleARN: o.RoleARN, Logger: o.Logger})
	}
	return nil, fmt.Errorf("%w (profile %s)", ErrNoBatchAPI, cmpName(p))
}

func cmpName(p llm.Profile) string {
	if p.Preset != "" {
		return p.Preset
	}
	return p.Provider + "/" + p.Model
}
