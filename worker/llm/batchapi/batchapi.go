package batchapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"time"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// Line is one request of a batch: CustomID names it in the provider's
// output (it must be unique within a file) and Req is the request exactly as
// it would be sent online.
type Line struct {
	CustomID string
	Req      llm.Request
}

// State is a batch job's state, in the OpenAI Batch API's words (Bedrock's
// job states are mapped onto them).
type State string

// Job states.
const (
	StateValidating State = "validating"
	StateInProgress State = "in_progress"
	StateFinalizing State = "finalizing"
	StateCompleted  State = "completed"
	StateExpired    State = "expired"
	StateFailed     State = "failed"
	StateCancelling State = "cancelling"
	StateCancelled  State = "cancelled"
)

// Done reports whether the job has ended: no line will be answered any
// more, and Results may be read.
func (s State) Done() bool {
	switch s {
	case StateCompleted, StateExpired, StateFailed, StateCancelled:
		return true
	}
	return false
}

// Counts are the provider's request counts for a job.
type Counts struct {
	Total, Completed, Failed int
}

// Job is a provider batch job as last seen. It is plain data (JSON-friendly)
// so that a poller task can carry it, or just its ID, between polls.
type Job struct {
	// ID is the provider's id: an OpenAI batch id, or a Bedrock job ARN.
	ID string `json:"id"`
	// Provider is llm.ProviderOpenAI or llm.ProviderBedrock.
	Provider string `json:"provider"`
	// Name is the name given to Submit.
	Name  string `json:"name,omitempty"`
	State State  `json:"state"`
	// Counts are the request counts the provider reports (zero until it
	// reports them).
	Counts Counts `json:"counts"`
	// InputFile is the input file: an OpenAI file id, or the storage key
	// of the Bedrock input JSONL.
	InputFile string `json:"input_file"`
	// OutputFile and ErrorFile are the OpenAI output and error file ids
	// (empty until the provider has them). For Bedrock, OutputFile is the
	// storage key of the output records (<input>.out) and ErrorFile is
	// empty: failed records are in the output file.
	OutputFile string `json:"output_file,omitempty"`
	ErrorFile  string `json:"error_file,omitempty"`
	// Message is the provider's reason for a failed job, if any.
	Message string `json:"message,omitempty"`
	// Created and Expires are when the job was created and when its
	// window ends (zero when unknown).
	Created time.Time `json:"created,omitzero"`
	Expires time.Time `json:"expires,omitzero"`
}

// Result is the fate of one line of a finished job.
type Result struct {
	CustomID string
	// Resp is the answer as the online client would have returned it for
	// a request without a schema (text as given, usage as reported). Use
	// Response with the original request for the exact online answer.
	Resp llm.Response
	// Err is nil, a *LineError (the provider answered the line with an
	// error; its *llm.Error says whether to retry), or an error matching
	// ErrNotAnswered (the job ended before the line was answered: send it
	// online or in another batch).
	Err error

	finish func(llm.Request) (llm.Response, error)
}

// Response returns what the online client's Complete would have returned
// for req: the same text (the JSON object extracted when req has a
// schema), finish reason, model and usage (estimated parts included), or
// the same error. req is the request the line was built from.
func (r Result) Response(req llm.Request) (llm.Response, error) {
	if r.Err != nil {
		return llm.Response{}, r.Err
	}
	if r.finish == nil {
		return r.Resp, nil
	}
	return r.finish(req)
}

// Client is a provider's batch API.
type Client interface {
	// Encode turns a line into one line of the provider's input file
	// (JSON, without the newline). Errors are permanent for the line: an
	// invalid request (*llm.Error) or a bad custom id.
	Encode(l Line) ([]byte, error)
	// Limits are the provider's file limits.
	Limits() Limits
	// Submit uploads an input file of n lines (as a Packer cuts it) and
	// creates the job. name names the job and the uploaded file; it should
	// be unique per submission.
	Submit(ctx context.Context, name string, data io.Reader, n int) (Job, error)
	// Get returns the job's current state.
	Get(ctx context.Context, id string) (Job, error)
	// Results yields exactly one Result per input line once the job is
	// Done (before that, only the error ErrNotDone): answered lines as the
	// provider's files list them, then the lines it never answered, with
	// ErrNotAnswered, in input order. Output and error files are both
	// read. A non-nil second value is a failure to read the results (retry
	// later; nothing is lost); iteration stops after it.
	Results(ctx context.Context, job Job) iter.Seq2[Result, error]
	// Cancel asks the provider to stop the job; lines already answered
	// stay available through Results once the job is cancelled.
	Cancel(ctx context.Context, id string) error
}

// ErrNotAnswered marks a line the provider never answered: the job expired,
// was cancelled or failed before reaching it. The line was not paid for;
// send it online or in the next batch.
var ErrNotAnswered = errors.New("batchapi: line not answered by the provider")

// ErrNotDone is returned by Results for a job that has not ended.
var ErrNotDone = errors.New("batchapi: job has not ended")

// ErrPermanent is matched (errors.Is) by errors that will not go away on
// retry: an oversized line, a duplicate custom id, too few lines for the
// provider's minimum.
var ErrPermanent = errors.New("batchapi: permanent")

// LineTooLargeError rejects a line longer than Limits.MaxLineBytes. The
// line cannot go in any batch file: send it online or fail the item.
type LineTooLargeError struct {
	CustomID    string
	Size, Limit int64
}

func (e *LineTooLargeError) Error() string {
	return fmt.Sprintf("batchapi: line %q is %d bytes, over the provider's limit of %d bytes per line", e.CustomID, e.Size, e.Limit)
}

// Is makes a LineTooLargeError match ErrPermanent.
func (e *LineTooLargeError) Is(target error) bool { return target == ErrPermanent }

// DuplicateIDError rejects a line whose custom id is already in the file.
type DuplicateIDError struct{ CustomID string }

func (e *DuplicateIDError) Error() string {
	return fmt.Sprintf("batchapi: custom id %q is already in this batch file", e.CustomID)
}

// Is makes a DuplicateIDError match ErrPermanent.
func (e *DuplicateIDError) Is(target error) bool { return target == ErrPermanent }

// TooFewLinesError refuses a submission below the provider's minimum of
// lines per job (Bedrock). Send the lines online, or wait for more.
type TooFewLinesError struct{ Lines, Min int }

func (e *TooFewLinesError) Error() string {
	return fmt.Sprintf("batchapi: %d lines are fewer than the provider's minimum of %d per job", e.Lines, e.Min)
}

// Is makes a TooFewLinesError match ErrPermanent.
func (e *TooFewLinesError) Is(target error) bool { return target == ErrPermanent }

// LineError is a line the provider answered with an error. Err is the
// classified *llm.Error (llm.KindOf tells whether to retry online).
type LineError struct {
	CustomID string
	Err      error
}

func (e *LineError) Error() string { return fmt.Sprintf("batch line %q: %v", e.CustomID, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// notAnswered is the error of a line without an answer.
func notAnswered(id, why string) error {
	if why == "" {
		return fmt.Errorf("line %q: %w", id, ErrNotAnswered)
	}
	return fmt.Errorf("line %q: %s: %w", id, why, ErrNotAnswered)
}

var errStop = errors.New("stop")

// results implements Client.Results for a provider whose files each reads
// line by line: the input file's line IDs (custom_id or recordId), then the
// answered lines of files, in order, mapped by parse (lines for unknown or
// repeated IDs are logged and dropped), then every input line left
// unanswered, as ErrNotAnswered, in input order. missingOK treats a missing
// answer file as empty.
func results(ctx context.Context, job Job, each func(ctx context.Context, file string, fn func([]byte) error) error,
	files []string, missingOK bool, parse func(line []byte) (string, Result, error), log *slog.Logger) iter.Seq2[Result, error] {
	return func(yield func(Result, error) bool) {
		if !job.State.Done() {
			yield(Result{}, fmt.Errorf("results of batch %s (%s): %w", job.ID, job.State, ErrNotDone))
			return
		}
		var ids []string
		err := each(ctx, job.InputFile, func(line []byte) error {
			var l struct {
				CustomID string `json:"custom_id"`
				RecordID string `json:"recordId"`
			}
			if err := json.Unmarshal(line, &l); err != nil {
				return err
			}
			ids = append(ids, cmp.Or(l.CustomID, l.RecordID))
			return nil
		})
		if err != nil {
			yield(Result{}, fmt.Errorf("read input file of batch %s: %w", job.ID, err))
			return
		}
		pending := make(map[string]bool, len(ids))
		for _, id := range ids {
			pending[id] = true
		}
		for _, file := range files {
			if file == "" {
				continue
			}
			stopped := false
			err := each(ctx, file, func(line []byte) error {
				id, r, err := parse(line)
				if err != nil {
					return err
				}
				if !pending[id] {
					log.Warn("batch output line for an unknown or repeated id", "batch", job.ID)
					return nil
				}
				delete(pending, id)
				if !yield(r, nil) {
					stopped = true
					return errStop
				}
				return nil
			})
			if stopped {
				return
			}
			if err != nil && !(missingOK && errors.Is(err, storage.ErrNotExist)) {
				yield(Result{}, fmt.Errorf("read file %s of batch %s: %w", file, job.ID, err))
				return
			}
		}
		why := "batch " + string(job.State)
		for _, id := range ids {
			if pending[id] && !yield(Result{CustomID: id, Err: notAnswered(id, why)}, nil) {
				return
			}
		}
	}
}
