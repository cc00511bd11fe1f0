package batchapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"strings"
	"time"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/openai"
)

// ChatEndpoint is the endpoint of every line and of the batch.
const ChatEndpoint = "/v1/chat/completions"

// CompletionWindow is the only window the OpenAI Batch API offers.
const CompletionWindow = "24h"

// OpenAIOptions configure an OpenAI-style batch client.
type OpenAIOptions struct {
	// Online is the online client of the same profile (required): its
	// SDK client gives base URL, API key and headers, its BatchBody the
	// lines' bodies and its ResponseFromBody the answers.
	Online *openai.Client
	// Limits are the file limits. Default (zero value): ProfileLimits of
	// the online client's profile.
	Limits Limits
	// FilePurpose is the purpose of uploaded input files. Default:
	// ProfileFilePurpose of the online client's profile ("batch"; Together
	// wants "batch-api").
	FilePurpose string
	// Logger receives job ids and states, never content. Default: discard.
	Logger *slog.Logger
}

// OpenAI is the Client for OpenAI-style Batch APIs (OpenAI, and
// OpenAI-compatible providers that serve /v1/files and /v1/batches). It is
// safe for concurrent use.
type OpenAI struct {
	online  *openai.Client
	sdk     *sdk.Client
	limits  Limits
	purpose string
	log     *slog.Logger
}

var _ Client = (*OpenAI)(nil)

// NewOpenAI returns a Client. It makes no network call.
func NewOpenAI(o OpenAIOptions) (*OpenAI, error) {
	if o.Online == nil {
		return nil, errors.New("batchapi: openai: online client is required")
	}
	c := &OpenAI{online: o.Online, sdk: o.Online.SDK(), limits: o.Limits, purpose: o.FilePurpose, log: o.Logger}
	if c.limits == (Limits{}) {
		c.limits = ProfileLimits(o.Online.Profile())
	}
	if c.purpose == "" {
		c.purpose = ProfileFilePurpose(o.Online.Profile())
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Limits returns the file limits.
func (c *OpenAI) Limits() Limits { return c.limits }

type openaiLine struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// Encode returns {"custom_id":…,"method":"POST","url":"/v1/chat/completions","body":…}
// with the body the online client would send.
func (c *OpenAI) Encode(l Line) ([]byte, error) {
	if l.CustomID == "" {
		return nil, fmt.Errorf("batchapi: empty custom id: %w", ErrPermanent)
	}
	body, err := c.online.BatchBody(l.Req)
	if err != nil {
		return nil, err
	}
	return json.Marshal(openaiLine{CustomID: l.CustomID, Method: http.MethodPost, URL: ChatEndpoint, Body: body})
}

// Submit uploads the file (purpose "batch") and creates the batch.
func (c *OpenAI) Submit(ctx context.Context, name string, data io.Reader, n int) (Job, error) {
	if n < c.limits.MinLines {
		return Job{}, &TooFewLinesError{Lines: n, Min: c.limits.MinLines}
	}
	var hr *http.Response
	f, err := c.sdk.Files.New(ctx, sdk.FileNewParams{
		File:    sdk.File(data, name+".jsonl", "application/jsonl"),
		Purpose: sdk.FilePurpose(c.purpose),
	}, option.WithResponseInto(&hr))
	if err != nil {
		return Job{}, fmt.Errorf("upload batch file %s: %w", name, c.online.ClassifyError(ctx, "upload batch file", hr, err))
	}
	hr = nil
	b, err := c.sdk.Batches.New(ctx, sdk.BatchNewParams{
		InputFileID:      f.ID,
		Endpoint:         sdk.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: sdk.BatchNewParamsCompletionWindow24h,
		Metadata:         shared.Metadata{"name": name},
	}, option.WithResponseInto(&hr))
	if err != nil {
		return Job{}, fmt.Errorf("create batch %s (file %s): %w", name, f.ID, c.online.ClassifyError(ctx, "create batch", hr, err))
	}
	job := c.job(b)
	c.log.Info("batch submitted", "provider", job.Provider, "batch", job.ID, "file", f.ID, "lines", n)
	return job, nil
}

// Get returns the batch's state.
func (c *OpenAI) Get(ctx context.Context, id string) (Job, error) {
	var hr *http.Response
	b, err := c.sdk.Batches.Get(ctx, id, option.WithResponseInto(&hr))
	if err != nil {
		return Job{}, fmt.Errorf("get batch %s: %w", id, c.online.ClassifyError(ctx, "get batch", hr, err))
	}
	return c.job(b), nil
}

// Cancel cancels the batch (it goes through "cancelling" to "cancelled").
func (c *OpenAI) Cancel(ctx context.Context, id string) error {
	var hr *http.Response
	if _, err := c.sdk.Batches.Cancel(ctx, id, option.WithResponseInto(&hr)); err != nil {
		return fmt.Errorf("cancel batch %s: %w", id, c.online.ClassifyError(ctx, "cancel batch", hr, err))
	}
	c.log.Info("batch cancel requested", "provider", llm.ProviderOpenAI, "batch", id)
	return nil
}

func (c *OpenAI) job(b *sdk.Batch) Job {
	j := Job{
		ID: b.ID, Provider: llm.ProviderOpenAI, Name: b.Metadata["name"], State: State(b.Status),
		Counts:     Counts{Total: int(b.RequestCounts.Total), Completed: int(b.RequestCounts.Completed), Failed: int(b.RequestCounts.Failed)},
		InputFile:  b.InputFileID,
		OutputFile: b.OutputFileID, ErrorFile: b.ErrorFileID,
	}
	var msgs []string
	for _, e := range b.Errors.Data {
		m := e.Code + ": " + e.Message
		if e.Line > 0 {
			m = fmt.Sprintf("line %d: %s", e.Line, m)
		}
		msgs = append(msgs, m)
	}
	j.Message = strings.Join(msgs, "; ")
	if b.CreatedAt > 0 {
		j.Created = time.Unix(b.CreatedAt, 0).UTC()
	}
	if b.ExpiresAt > 0 {
		j.Expires = time.Unix(b.ExpiresAt, 0).UTC()
	}
	return j
}

// outputLine is a line of an output or error file.
type outputLine struct {
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Results yields, for a job that has ended, the output file's lines, then
// the error file's, then every input line found in neither (as
// ErrNotAnswered), in input order.
func (c *OpenAI) Results(ctx context.Context, job Job) iter.Seq2[Result, error] {
	return results(ctx, job, c.eachLine, []string{job.OutputFile, job.ErrorFile}, false, func(line []byte) (string, Result, error) {
		var ol outputLine
		if err := json.Unmarshal(line, &ol); err != nil {
			return "", Result{}, err
		}
		return ol.CustomID, c.result(ol), nil
	}, c.log)
}

// result maps one output or error line.
func (c *OpenAI) result(ol outputLine) Result {
	r := Result{CustomID: ol.CustomID}
	if ol.Response == nil {
		code, msg := "", ""
		if ol.Error != nil {
			code, msg = ol.Error.Code, ol.Error.Message
		}
		switch code {
		case "batch_expired", "batch_cancelled", "batch_failed", "":
			r.Err = notAnswered(ol.CustomID, strings.TrimSpace(code+" "+msg))
		default:
			body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
			r.Err = &LineError{CustomID: ol.CustomID, Err: llm.HTTPError(c.online.Name(), http.StatusBadRequest, nil, body, "")}
		}
		return r
	}
	status, body := ol.Response.StatusCode, []byte(ol.Response.Body)
	resp, err := c.online.ResponseFromBody(llm.Request{}, status, body)
	if err != nil {
		r.Err = &LineError{CustomID: ol.CustomID, Err: err}
		return r
	}
	r.Resp = resp
	r.finish = func(req llm.Request) (llm.Response, error) {
		resp, err := c.online.ResponseFromBody(req, status, body)
		if err != nil {
			return resp, &LineError{CustomID: ol.CustomID, Err: err}
		}
		return resp, nil
	}
	return r
}

// eachLine streams a file's content line by line.
func (c *OpenAI) eachLine(ctx context.Context, fileID string, fn func([]byte) error) error {
	var hr *http.Response
	resp, err := c.sdk.Files.Content(ctx, fileID, option.WithResponseInto(&hr))
	if err != nil {
		if resp != nil && hr == nil {
			hr = resp
		}
		return c.online.ClassifyError(ctx, "download batch file", hr, err)
	}
	defer resp.Body.Close()
	return eachLine(resp.Body, fn)
}

// eachLine calls fn for every non-blank line of r (without its newline).
func eachLine(r io.Reader, fn func([]byte) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if ferr := fn(line); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
