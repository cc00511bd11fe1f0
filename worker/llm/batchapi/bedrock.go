package batchapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"path"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awsbedrock "github.com/aws/aws-sdk-go-v2/service/bedrock"
	"github.com/aws/aws-sdk-go-v2/service/bedrock/types"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/bedrock"
)

// BedrockOptions configure a Bedrock batch inference client.
type BedrockOptions struct {
	// Online is the online Converse client of the same profile (required):
	// its BatchBody builds each record's modelInput and its
	// ResponseFromBody maps each modelOutput; its profile gives the model id
	// and region.
	Online *bedrock.Client
	// Store is where input and output files live (required). It must be
	// an S3 store (Location s3://bucket/prefix): Bedrock reads and writes
	// S3 itself.
	Store storage.Store
	// Prefix is the work prefix inside Store (e.g. the run's
	// ".llamapipe/batch"); inputs go to <Prefix>/in/<name>.jsonl, outputs
	// to <Prefix>/out/<job id>/<name>.jsonl.out. Default "" (Store's root).
	Prefix string
	// RoleARN is the service role Bedrock assumes to read the input and
	// write the output (required).
	RoleARN string
	// Endpoint overrides the Bedrock control-plane endpoint (tests, VPC
	// endpoints). Default: the region's.
	Endpoint string
	// Credentials, when set, replace the AWS default credential chain.
	Credentials aws.CredentialsProvider
	// HTTPClient carries the control-plane requests. Default: the SDK's.
	HTTPClient *http.Client
	// Limits are the file and job limits. Default (zero value):
	// BedrockLimits().
	Limits Limits
	// TimeoutHours is the job's timeout. Default 0: Bedrock's default
	// (24 hours).
	TimeoutHours int32
	// Logger receives job ids and states, never content. Default: discard.
	Logger *slog.Logger
}

// Bedrock is the Client for Bedrock batch inference (model invocation
// jobs with modelInvocationType Converse). It is safe for concurrent use.
type Bedrock struct {
	online  *bedrock.Client
	cp      *awsbedrock.Client
	store   storage.Store
	base    string // s3://bucket/prefix of store, without trailing slash
	prefix  string
	role    string
	limits  Limits
	timeout int32
	log     *slog.Logger
}

var _ Client = (*Bedrock)(nil)

// NewBedrock loads the AWS configuration and returns a Client. It makes no
// call to Bedrock.
func NewBedrock(ctx context.Context, o BedrockOptions) (*Bedrock, error) {
	switch {
	case o.Online == nil:
		return nil, errors.New("batchapi: bedrock: online client is required")
	case o.Store == nil:
		return nil, errors.New("batchapi: bedrock: store is required")
	case o.RoleARN == "":
		return nil, errors.New("batchapi: bedrock: service role ARN is required")
	}
	base := strings.TrimRight(o.Store.Location(), "/")
	if !strings.HasPrefix(base, "s3://") {
		return nil, fmt.Errorf("batchapi: bedrock: store %s is not on S3", base)
	}
	prefix := ""
	if o.Prefix != "" {
		p, err := storage.CleanPrefix(o.Prefix)
		if err != nil {
			return nil, fmt.Errorf("batchapi: bedrock: work prefix: %w", err)
		}
		prefix = strings.TrimRight(p, "/")
	}
	var loads []func(*config.LoadOptions) error
	if r := o.Online.Profile().Region; r != "" {
		loads = append(loads, config.WithRegion(r))
	}
	if o.Credentials != nil {
		loads = append(loads, config.WithCredentialsProvider(o.Credentials))
	}
	if o.HTTPClient != nil {
		loads = append(loads, config.WithHTTPClient(o.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("batchapi: bedrock: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = bedrock.DefaultRegion
	}
	cp := awsbedrock.NewFromConfig(cfg, func(bo *awsbedrock.Options) {
		bo.Retryer = aws.NopRetryer{} // the queue retries
		if o.Endpoint != "" {
			bo.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	c := &Bedrock{online: o.Online, cp: cp, store: o.Store, base: base, prefix: prefix, role: o.RoleARN,
		limits: o.Limits, timeout: o.TimeoutHours, log: o.Logger}
	if c.limits == (Limits{}) {
		c.limits = BedrockLimits()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Limits returns the file and job limits.
func (c *Bedrock) Limits() Limits { return c.limits }

type bedrockRecord struct {
	RecordID   string          `json:"recordId"`
	ModelInput json.RawMessage `json:"modelInput"`
}

// Encode returns {"recordId":…,"modelInput":{Converse request body}}.
func (c *Bedrock) Encode(l Line) ([]byte, error) {
	if l.CustomID == "" {
		return nil, fmt.Errorf("batchapi: empty custom id: %w", ErrPermanent)
	}
	body, err := c.online.BatchBody(l.Req)
	if err != nil {
		return nil, err
	}
	return json.Marshal(bedrockRecord{RecordID: l.CustomID, ModelInput: body})
}

var jobName = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// safeName makes name a valid job name and file name: letters, digits and
// dashes, starting with a letter or digit, at most 63 characters.
func safeName(name string) string {
	s := strings.Trim(jobName.ReplaceAllString(name, "-"), "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if s == "" {
		s = "llamapipe-batch"
	}
	return s
}

func (c *Bedrock) key(elems ...string) string {
	if c.prefix != "" {
		elems = append([]string{c.prefix}, elems...)
	}
	return storage.JoinKey(elems...)
}

func (c *Bedrock) uri(key string) string { return c.base + "/" + key }

// keyOf turns an s3:// URI under the store back into a key.
func (c *Bedrock) keyOf(uri string) (string, bool) {
	k, ok := strings.CutPrefix(uri, c.base+"/")
	return k, ok
}

// Submit refuses fewer than Limits.MinLines lines (*TooFewLinesError), then
// writes the input to <Prefix>/in/<name>.jsonl and creates the job.
func (c *Bedrock) Submit(ctx context.Context, name string, data io.Reader, n int) (Job, error) {
	if n < c.limits.MinLines {
		return Job{}, &TooFewLinesError{Lines: n, Min: c.limits.MinLines}
	}
	name = safeName(name)
	in := c.key("in", name+".jsonl")
	if err := c.store.Put(ctx, in, data, -1, "application/jsonl"); err != nil {
		return Job{}, fmt.Errorf("write batch input %s: %w", name, err)
	}
	input := &types.ModelInvocationJobInputDataConfigMemberS3InputDataConfig{Value: types.ModelInvocationJobS3InputDataConfig{
		S3Uri: aws.String(c.uri(in)), S3InputFormat: types.S3InputFormatJsonl,
	}}
	output := &types.ModelInvocationJobOutputDataConfigMemberS3OutputDataConfig{Value: types.ModelInvocationJobS3OutputDataConfig{
		S3Uri: aws.String(c.uri(c.key("out")) + "/"),
	}}
	params := &awsbedrock.CreateModelInvocationJobInput{
		JobName:             aws.String(name),
		ModelId:             aws.String(c.online.Profile().Model),
		RoleArn:             aws.String(c.role),
		InputDataConfig:     input,
		OutputDataConfig:    output,
		ModelInvocationType: types.ModelInvocationTypeConverse,
		ClientRequestToken:  aws.String(name),
	}
	if c.timeout > 0 {
		params.TimeoutDurationInHours = aws.Int32(c.timeout)
	}
	out, err := c.cp.CreateModelInvocationJob(ctx, params)
	if err != nil {
		return Job{}, fmt.Errorf("create batch inference job %s: %w", name, bedrock.Classify(ctx, err))
	}
	id := aws.ToString(out.JobArn)
	job := Job{ID: id, Provider: llm.ProviderBedrock, Name: name, State: StateValidating, InputFile: in,
		OutputFile: c.outputKey(c.key("out"), id, in)}
	c.log.Info("batch submitted", "provider", job.Provider, "batch", id, "lines", n)
	return job, nil
}

// outputKey is where Bedrock writes the records of input key in: under
// the output prefix, a folder named after the job id (the ARN's last
// element), the input file's name with ".out".
func (c *Bedrock) outputKey(outPrefix, arn, in string) string {
	return storage.JoinKey(outPrefix, jobIDOf(arn), path.Base(in)+".out")
}

func jobIDOf(arn string) string {
	if i := strings.LastIndexByte(arn, '/'); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

// Get returns the job's state.
func (c *Bedrock) Get(ctx context.Context, id string) (Job, error) {
	out, err := c.cp.GetModelInvocationJob(ctx, &awsbedrock.GetModelInvocationJobInput{JobIdentifier: aws.String(id)})
	if err != nil {
		return Job{}, fmt.Errorf("get batch inference job %s: %w", id, bedrock.Classify(ctx, err))
	}
	j := Job{ID: aws.ToString(out.JobArn), Provider: llm.ProviderBedrock, Name: aws.ToString(out.JobName),
		State: bedrockState(out.Status), Message: aws.ToString(out.Message)}
	if j.ID == "" {
		j.ID = id
	}
	j.Counts = Counts{
		Total:     int(aws.ToInt64(out.ProcessedRecordCount)),
		Completed: int(aws.ToInt64(out.SuccessRecordCount)),
		Failed:    int(aws.ToInt64(out.ErrorRecordCount)),
	}
	if in, ok := out.InputDataConfig.(*types.ModelInvocationJobInputDataConfigMemberS3InputDataConfig); ok {
		if k, ok := c.keyOf(aws.ToString(in.Value.S3Uri)); ok {
			j.InputFile = k
		}
	}
	if o, ok := out.OutputDataConfig.(*types.ModelInvocationJobOutputDataConfigMemberS3OutputDataConfig); ok && j.InputFile != "" {
		if k, ok := c.keyOf(strings.TrimRight(aws.ToString(o.Value.S3Uri), "/")); ok {
			j.OutputFile = c.outputKey(k, j.ID, j.InputFile)
		}
	}
	if out.SubmitTime != nil {
		j.Created = out.SubmitTime.UTC()
	}
	if out.JobExpirationTime != nil {
		j.Expires = out.JobExpirationTime.UTC()
	}
	return j, nil
}

func bedrockState(s types.ModelInvocationJobStatus) State {
	switch s {
	case types.ModelInvocationJobStatusInProgress:
		return StateInProgress
	case types.ModelInvocationJobStatusCompleted, types.ModelInvocationJobStatusPartiallyCompleted:
		return StateCompleted
	case types.ModelInvocationJobStatusFailed:
		return StateFailed
	case types.ModelInvocationJobStatusStopping:
		return StateCancelling
	case types.ModelInvocationJobStatusStopped:
		return StateCancelled
	case types.ModelInvocationJobStatusExpired:
		return StateExpired
	}
	return StateValidating // Submitted, Validating, Scheduled
}

// Cancel stops the job.
func (c *Bedrock) Cancel(ctx context.Context, id string) error {
	if _, err := c.cp.StopModelInvocationJob(ctx, &awsbedrock.StopModelInvocationJobInput{JobIdentifier: aws.String(id)}); err != nil {
		return fmt.Errorf("stop batch inference job %s: %w", id, bedrock.Classify(ctx, err))
	}
	c.log.Info("batch cancel requested", "provider", llm.ProviderBedrock, "batch", id)
	return nil
}

type bedrockOutput struct {
	RecordID    string          `json:"recordId"`
	ModelOutput json.RawMessage `json:"modelOutput"`
	Error       *struct {
		ErrorCode    int    `json:"errorCode"`
		ErrorMessage string `json:"errorMessage"`
	} `json:"error"`
}

// Results yields, for a job that has ended, the output records (answers
// and per-record errors), then every input record without output (as
// ErrNotAnswered), in input order.
func (c *Bedrock) Results(ctx context.Context, job Job) iter.Seq2[Result, error] {
	// A job that ended before writing any output has no output file.
	return results(ctx, job, c.eachLine, []string{job.OutputFile}, true, func(line []byte) (string, Result, error) {
		var o bedrockOutput
		if err := json.Unmarshal(line, &o); err != nil {
			return "", Result{}, err
		}
		return o.RecordID, c.result(o), nil
	}, c.log)
}

func (c *Bedrock) result(o bedrockOutput) Result {
	r := Result{CustomID: o.RecordID}
	if o.Error != nil {
		r.Err = &LineError{CustomID: o.RecordID, Err: bedrock.RecordError(o.Error.ErrorCode, o.Error.ErrorMessage)}
		return r
	}
	if len(o.ModelOutput) == 0 || string(o.ModelOutput) == "null" {
		r.Err = notAnswered(o.RecordID, "no model output")
		return r
	}
	body := []byte(o.ModelOutput)
	resp, err := c.online.ResponseFromBody(llm.Request{}, body)
	if err != nil {
		r.Err = &LineError{CustomID: o.RecordID, Err: err}
		return r
	}
	r.Resp = resp
	r.finish = func(req llm.Request) (llm.Response, error) {
		resp, err := c.online.ResponseFromBody(req, body)
		if err != nil {
			return resp, &LineError{CustomID: o.RecordID, Err: err}
		}
		return resp, nil
	}
	return r
}

func (c *Bedrock) eachLine(ctx context.Context, key string, fn func([]byte) error) error {
	rc, err := c.store.Get(ctx, key, nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	return eachLine(rc, fn)
}
