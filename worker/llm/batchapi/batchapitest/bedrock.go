package batchapitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
)

// BedrockOptions configure a BedrockServer.
type BedrockOptions struct {
	// Store stands in for S3: input and output s3:// URIs must lie under
	// its Location (required).
	Store storage.Store
	// MinRecords is the fewest records a job may have; a job with fewer
	// fails validation. Default 100 (Bedrock's default quota).
	MinRecords int
	// FailRecord, when set, is asked for every record as it is processed;
	// true gives the record an error object (errorCode 500). Default nil.
	FailRecord func(index int, recordID string) bool
	// Account and Region appear in job ARNs. Defaults "000000000000" and
	// "us-east-1".
	Account, Region string
}

// BedrockServer is the fake Bedrock batch inference control plane. It is
// safe for concurrent use.
type BedrockServer struct {
	opts BedrockOptions
	base string

	mu      sync.Mutex
	seq     int
	jobs    map[string]*bedrockJob // by ARN
	created int
}

type bedrockJob struct {
	obj      map[string]any
	arn, id  string
	inURI    string
	outURI   string
	inKeys   []string
	records  int
	finished bool
}

// NewBedrock returns a BedrockServer.
func NewBedrock(o BedrockOptions) *BedrockServer {
	if o.MinRecords <= 0 {
		o.MinRecords = 100
	}
	if o.Account == "" {
		o.Account = "000000000000"
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	return &BedrockServer{opts: o, base: strings.TrimRight(o.Store.Location(), "/"), jobs: map[string]*bedrockJob{}}
}

var _ http.Handler = (*BedrockServer)(nil)

// Created is the number of jobs created.
func (s *BedrockServer) Created() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

func bedrockError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", typ)
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"message": msg})
	_, _ = w.Write(b)
}

// ServeHTTP answers the model-invocation-job operations.
func (s *BedrockServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/model-invocation-job")
	switch {
	case !ok:
		bedrockError(w, http.StatusNotFound, "UnknownOperationException", "unknown operation "+r.URL.Path)
	case rest == "" && r.Method == http.MethodPost:
		s.createJob(w, r)
	case strings.HasSuffix(rest, "/stop") && r.Method == http.MethodPost:
		s.stopJob(w, strings.TrimSuffix(strings.TrimPrefix(rest, "/"), "/stop"))
	case rest != "" && r.Method == http.MethodGet:
		s.getJob(w, strings.TrimPrefix(rest, "/"))
	default:
		bedrockError(w, http.StatusNotFound, "UnknownOperationException", "unknown operation "+r.Method+" "+r.URL.Path)
	}
}

func (s *BedrockServer) keyOf(uri string) (string, bool) {
	k, ok := strings.CutPrefix(uri, s.base+"/")
	return k, ok
}

func (s *BedrockServer) createJob(w http.ResponseWriter, r *http.Request) {
	var p struct {
		JobName         string `json:"jobName"`
		ModelID         string `json:"modelId"`
		RoleArn         string `json:"roleArn"`
		InvocationType  string `json:"modelInvocationType"`
		InputDataConfig struct {
			S3 *struct {
				S3URI    string `json:"s3Uri"`
				S3Format string `json:"s3InputFormat"`
			} `json:"s3InputDataConfig"`
		} `json:"inputDataConfig"`
		OutputDataConfig struct {
			S3 *struct {
				S3URI string `json:"s3Uri"`
			} `json:"s3OutputDataConfig"`
		} `json:"outputDataConfig"`
		Timeout *int `json:"timeoutDurationInHours"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
		bedrockError(w, http.StatusBadRequest, "ValidationException", "could not parse the request body")
		return
	}
	switch {
	case p.JobName == "" || p.ModelID == "" || p.RoleArn == "":
		bedrockError(w, http.StatusBadRequest, "ValidationException", "jobName, modelId and roleArn are required")
		return
	case p.InputDataConfig.S3 == nil || p.OutputDataConfig.S3 == nil:
		bedrockError(w, http.StatusBadRequest, "ValidationException", "inputDataConfig.s3InputDataConfig and outputDataConfig.s3OutputDataConfig are required")
		return
	case p.InvocationType != "" && p.InvocationType != "InvokeModel" && p.InvocationType != "Converse":
		bedrockError(w, http.StatusBadRequest, "ValidationException", "modelInvocationType must be InvokeModel or Converse")
		return
	case p.Timeout != nil && (*p.Timeout < 24 || *p.Timeout > 168):
		bedrockError(w, http.StatusBadRequest, "ValidationException", "timeoutDurationInHours must be between 24 and 168")
		return
	}
	inKey, ok1 := s.keyOf(p.InputDataConfig.S3.S3URI)
	_, ok2 := s.keyOf(strings.TrimRight(p.OutputDataConfig.S3.S3URI, "/") + "/x")
	if !ok1 || !ok2 {
		bedrockError(w, http.StatusBadRequest, "ValidationException", "S3 URIs must lie under "+s.base)
		return
	}
	// The input is one .jsonl object, or every .jsonl object under a prefix.
	ctx := r.Context()
	var keys []string
	if strings.HasSuffix(inKey, ".jsonl") {
		keys = []string{inKey}
	} else {
		for info, err := range s.opts.Store.List(ctx, strings.TrimRight(inKey, "/")+"/", storage.ListOptions{Recursive: true}) {
			if err != nil {
				bedrockError(w, http.StatusInternalServerError, "InternalServerException", "list input: "+err.Error())
				return
			}
			if strings.HasSuffix(info.Key, ".jsonl") {
				keys = append(keys, info.Key)
			}
		}
	}
	records := 0
	for _, k := range keys {
		err := s.eachRecord(ctx, k, func(int, bedrockInRecord) { records++ })
		if err != nil {
			bedrockError(w, http.StatusBadRequest, "ValidationException", "read input "+p.InputDataConfig.S3.S3URI+": "+err.Error())
			return
		}
	}
	if len(keys) == 0 {
		bedrockError(w, http.StatusBadRequest, "ValidationException", "no .jsonl input at "+p.InputDataConfig.S3.S3URI)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.created++
	id := fmt.Sprintf("fakejob%06d", s.seq)
	arn := fmt.Sprintf("arn:aws:bedrock:%s:%s:model-invocation-job/%s", s.opts.Region, s.opts.Account, id)
	now := time.Now().UTC()
	j := &bedrockJob{arn: arn, id: id, inURI: p.InputDataConfig.S3.S3URI, outURI: p.OutputDataConfig.S3.S3URI, inKeys: keys, records: records}
	j.obj = map[string]any{
		"jobArn": arn, "jobName": p.JobName, "modelId": p.ModelID, "roleArn": p.RoleArn,
		"status": "Submitted", "submitTime": now.Format(time.RFC3339), "lastModifiedTime": now.Format(time.RFC3339),
		"jobExpirationTime":   now.Add(24 * time.Hour).Format(time.RFC3339),
		"modelInvocationType": p.InvocationType,
		"inputDataConfig":     map[string]any{"s3InputDataConfig": map[string]any{"s3Uri": j.inURI, "s3InputFormat": "JSONL"}},
		"outputDataConfig":    map[string]any{"s3OutputDataConfig": map[string]any{"s3Uri": j.outURI}},
	}
	if records < s.opts.MinRecords {
		j.obj["status"] = "Failed"
		j.obj["message"] = fmt.Sprintf("Batch job contains %d records, fewer than the minimum of %d records.", records, s.opts.MinRecords)
	}
	s.jobs[arn] = j
	writeJSON(w, map[string]string{"jobArn": arn})
}

func (s *BedrockServer) job(ident string) (*bedrockJob, bool) {
	if j, ok := s.jobs[ident]; ok {
		return j, true
	}
	for _, j := range s.jobs { // a bare job id works too
		if j.id == ident {
			return j, true
		}
	}
	return nil, false
}

func (s *BedrockServer) getJob(w http.ResponseWriter, ident string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.job(ident)
	if !ok {
		bedrockError(w, http.StatusNotFound, "ResourceNotFoundException", "The specified job was not found.")
		return
	}
	writeJSON(w, j.obj)
}

func (s *BedrockServer) stopJob(w http.ResponseWriter, ident string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.job(ident)
	if !ok {
		bedrockError(w, http.StatusNotFound, "ResourceNotFoundException", "The specified job was not found.")
		return
	}
	switch j.obj["status"] {
	case "Submitted", "Validating", "Scheduled", "InProgress":
		j.obj["status"] = "Stopping"
	default:
		bedrockError(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("The job is %s and cannot be stopped.", j.obj["status"]))
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("{}"))
}

// JobStatus returns a job's status ("" when unknown).
func (s *BedrockServer) JobStatus(ident string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.job(ident); ok {
		st, _ := j.obj["status"].(string)
		return st
	}
	return ""
}

// Advance moves a job one step: Submitted → Validating → InProgress →
// Completed (every record answered, output written); Stopping → Stopped
// (nothing answered). It returns the new status.
func (s *BedrockServer) Advance(ctx context.Context, ident string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.job(ident)
	if !ok {
		return "", fmt.Errorf("no job %s", ident)
	}
	switch j.obj["status"] {
	case "Submitted":
		j.obj["status"] = "Validating"
	case "Validating":
		j.obj["status"] = "InProgress"
	case "InProgress":
		if err := s.finish(ctx, j, j.records); err != nil {
			return "", err
		}
		j.obj["status"] = "Completed"
	case "Stopping":
		j.obj["status"] = "Stopped"
	default:
		return "", fmt.Errorf("job %s is %s: nothing to advance", ident, j.obj["status"])
	}
	j.obj["lastModifiedTime"] = time.Now().UTC().Format(time.RFC3339)
	return j.obj["status"].(string), nil
}

// Expire ends an in-progress job as Expired with only its first answered
// records processed (written to the output; the rest have no output).
func (s *BedrockServer) Expire(ctx context.Context, ident string, answered int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.job(ident)
	if !ok {
		return fmt.Errorf("no job %s", ident)
	}
	if j.obj["status"] != "InProgress" {
		return fmt.Errorf("job %s is %s, not in progress", ident, j.obj["status"])
	}
	if err := s.finish(ctx, j, answered); err != nil {
		return err
	}
	j.obj["status"] = "Expired"
	return nil
}

type bedrockInRecord struct {
	RecordID   string          `json:"recordId"`
	ModelInput json.RawMessage `json:"modelInput"`
}

func (s *BedrockServer) eachRecord(ctx context.Context, key string, fn func(int, bedrockInRecord)) error {
	rc, err := s.opts.Store.Get(ctx, key, nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	i := 0
	for {
		line, rerr := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var rec bedrockInRecord
			if err := json.Unmarshal(line, &rec); err != nil || len(rec.ModelInput) == 0 {
				return fmt.Errorf("record %d is not {\"recordId\":…,\"modelInput\":{…}}", i+1)
			}
			fn(i, rec)
			i++
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// finish answers the first n records of j, writing one .out file per input
// file and manifest.json.out. Called with s.mu held.
func (s *BedrockServer) finish(ctx context.Context, j *bedrockJob, n int) error {
	if j.finished {
		return nil
	}
	outKey, _ := s.keyOf(strings.TrimRight(j.outURI, "/") + "/x")
	outPrefix := path.Dir(outKey)
	if outPrefix == "." {
		outPrefix = ""
	}
	inPrefix, _ := s.keyOf(j.inURI)
	if strings.HasSuffix(inPrefix, ".jsonl") {
		inPrefix = path.Dir(inPrefix)
	}
	idx, success, failed, inTok, outTok := 0, 0, 0, 0, 0
	for _, key := range j.inKeys {
		var out bytes.Buffer
		err := s.eachRecord(ctx, key, func(_ int, rec bedrockInRecord) {
			defer func() { idx++ }()
			if idx >= n {
				return
			}
			line := map[string]any{"recordId": rec.RecordID, "modelInput": rec.ModelInput}
			if s.opts.FailRecord != nil && s.opts.FailRecord(idx, rec.RecordID) {
				line["error"] = map[string]any{"errorCode": 500, "errorMessage": "Internal server error while processing the record."}
				failed++
			} else if ans, in, o, err := fakeserver.ConverseAnswer(rec.ModelInput); err != nil {
				line["error"] = map[string]any{"errorCode": 400, "errorMessage": err.Error()}
				failed++
			} else {
				line["modelOutput"] = ans
				success++
				inTok += in
				outTok += o
			}
			writeLine(&out, line)
		})
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(key, inPrefix), "/")
		dst := storage.JoinKey(outPrefix, j.id, rel+".out")
		if err := s.opts.Store.Put(ctx, dst, bytes.NewReader(out.Bytes()), int64(out.Len()), "application/jsonl"); err != nil {
			return err
		}
	}
	manifest, _ := json.Marshal(map[string]int{
		"totalRecordCount": j.records, "processedRecordCount": success + failed, "successRecordCount": success,
		"errorRecordCount": failed, "inputTokenCount": inTok, "outputTokenCount": outTok,
	})
	if err := s.opts.Store.Put(ctx, storage.JoinKey(outPrefix, j.id, "manifest.json.out"), bytes.NewReader(manifest), int64(len(manifest)), "application/json"); err != nil {
		return err
	}
	j.obj["processedRecordCount"] = success + failed
	j.obj["successRecordCount"] = success
	j.obj["errorRecordCount"] = failed
	j.obj["endTime"] = time.Now().UTC().Format(time.RFC3339)
	j.finished = true
	return nil
}
