package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	sdk "github.com/openai/openai-go/v3"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// This file serves the batch layer (package worker/llm/batchapi): the same
// request body and answer mapping as Complete, for requests that travel in
// an OpenAI-style Batch API file instead of one HTTP call each.

// BatchBody returns the JSON chat-completions body Complete would send for
// req, after the same validation. It carries image data (base64 data URLs).
func (c *Client) BatchBody(req llm.Request) ([]byte, error) {
	if err := llm.ValidateRequest(c.profile, req); err != nil {
		return nil, err
	}
	b, err := json.Marshal(c.Params(req))
	if err != nil {
		return nil, fmt.Errorf("%s: encode chat body: %w", c.name, err)
	}
	return b, nil
}

// ResponseFromBody maps one answer found in a batch output or error file
// (its HTTP status and chat-completion body) to what Complete would have
// returned for req: the same llm.Response on success, the same classified
// *llm.Error otherwise.
func (c *Client) ResponseFromBody(req llm.Request, status int, body []byte) (llm.Response, error) {
	if status >= 400 {
		return llm.Response{}, llm.HTTPError(c.name, status, nil, body, c.key)
	}
	var cc sdk.ChatCompletion
	if err := json.Unmarshal(body, &cc); err != nil {
		return llm.Response{}, llm.BadBody(c.name, status, fmt.Errorf("batch answer: %w", err), c.key)
	}
	return c.answer(&cc, string(body), req)
}

// SDK returns the client's openai-go client: the same base URL, API key
// (explicit, never OPENAI_API_KEY from the environment), extra headers and
// no SDK retries as Complete. The batch layer uses its Files and Batches
// services.
func (c *Client) SDK() *sdk.Client { return &c.sdk }

// Name is the provider name the client puts in errors.
func (c *Client) Name() string { return c.name }

// ClassifyError turns a failed SDK call of the batch layer (op names it,
// e.g. "upload batch file"; resp is the HTTP answer captured by
// option.WithResponseInto, possibly nil) into a classified *llm.Error with
// the API key redacted, as Complete classifies its own failures.
func (c *Client) ClassifyError(ctx context.Context, op string, resp *http.Response, err error) error {
	if err == nil {
		return nil
	}
	var le *llm.Error
	if errors.As(err, &le) {
		return err
	}
	switch {
	case resp != nil && resp.StatusCode >= 400:
		var body []byte
		if resp.Body != nil {
			body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
		}
		return llm.HTTPError(c.name, resp.StatusCode, resp.Header, body, c.key)
	case ctx.Err() != nil:
		return llm.TransportError(c.name, fmt.Errorf("%s: %w", op, ctx.Err()), c.key)
	case resp != nil:
		return llm.BadBody(c.name, resp.StatusCode, fmt.Errorf("%s: %w", op, err), c.key)
	default:
		return llm.TransportError(c.name, fmt.Errorf("%s: %w", op, err), c.key)
	}
}
