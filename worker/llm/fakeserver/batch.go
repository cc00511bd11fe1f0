package fakeserver

// This file holds two more fakes for the batch layer (worker/llm/batchapi):
//
//   - BatchServer, an OpenAI-style Batch API: POST /v1/files (multipart,
//     purpose "batch"; every line checked: JSON, unique custom_id, method
//     POST, url /v1/chat/completions, body with model and messages), GET
//     /v1/files/{id} and /v1/files/{id}/content, POST /v1/batches, GET
//     /v1/batches/{id}, POST /v1/batches/{id}/cancel. Batches move only when
//     the test says so (Advance, Expire, FailBatch); each line is answered
//     as the chat server answers it (400 for an invalid body, FailLine for
//     injected failures), into an output file and an error file.
//   - BedrockServer, the Bedrock control plane for batch inference: POST
//     /model-invocation-job, GET /model-invocation-job/{jobIdentifier}, POST
//     /model-invocation-job/{jobIdentifier}/stop (REST JSON as in the
//     Bedrock API reference; signatures are not checked). Input JSONL is
//     read from, and output records (<input>.out, manifest.json.out)
//     written to, a storage.Store standing in for S3.
//
// Neither logs request content.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llamapipe/llamapipe/storage"
)

// completion answers one chat body as the chat server does (without
// faults): the HTTP status and the JSON body.
func completion(body []byte, model, id string) (int, []byte) {
	req, verr := parseRequest(body)
	if verr != nil {
		e := map[string]any{"message": verr.msg, "type": "invalid_request_error", "param": nil, "code": nil}
		if verr.code != "" {
			e["code"] = verr.code
		}
		if verr.param != "" {
			e["param"] = verr.param
		}
		b, _ := json.Marshal(map[string]any{"error": e})
		return http.StatusBadRequest, b
	}
	content, finish, completionTokens := req.reply()
	b, _ := json.Marshal(map[string]any{
		"id": id, "object": "chat.completion", "created": time.Now().Unix(), "model": model,
		"choices": []any{map[string]any{
			"index": 0, "message": map[string]any{"role": "assistant", "content": content},
			"finish_reason": finish, "logprobs": nil,
		}},
		"usage": map[string]any{
			"prompt_tokens": req.promptTokens, "completion_tokens": completionTokens,
			"total_tokens": req.promptTokens + completionTokens,
		},
	})
	return http.StatusOK, b
}

// reply is the answer's content, finish reason and completion tokens, cut
// at the request's max tokens as the chat server cuts it.
func (req *request) reply() (string, string, int) {
	content := req.answer()
	finish := "stop"
	n := tokens(content)
	if req.maxTokens > 0 && n > req.maxTokens {
		content = truncateRunes(content, req.maxTokens*charsPerToken)
		n = req.maxTokens
		finish = "length"
	}
	return content, finish, n
}

// BatchOptions configure a BatchServer.
type BatchOptions struct {
	// APIKey, when set, is required as a bearer token. Default "": none.
	APIKey string
	// Model is the model named in answers. Default DefaultModel.
	Model string
	// FailLine, when set, is asked for every line as it is processed; a
	// true answer puts the line in the error file with HTTP 500
	// server_error. Default nil: no injected failures.
	FailLine func(index int, customID string) bool
	// OmitExpired leaves the lines an expiry cut off out of every file (as
	// if the provider lost them) instead of writing them to the error file
	// with code batch_expired. Default false.
	OmitExpired bool
	// MaxFileBytes and MaxFileLines bound an uploaded batch file (400
	// above). Defaults 200 MB and 50,000.
	MaxFileBytes int64
	MaxFileLines int
}

// BatchServer is the fake OpenAI-style Batch API. It is safe for
// concurrent use.
type BatchServer struct {
	opts  BatchOptions
	model string

	mu      sync.Mutex
	seq     int
	files   map[string]*batchFile
	batches map[string]*fakeBatch
}

type batchFile struct {
	ID, Name, Purpose string
	Data              []byte
	Created           int64
}

type fakeBatch struct {
	obj   map[string]any
	input string
	lines int
}

// NewBatch returns a BatchServer.
func NewBatch(o BatchOptions) *BatchServer {
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = 200 << 20
	}
	if o.MaxFileLines <= 0 {
		o.MaxFileLines = 50_000
	}
	m := o.Model
	if m == "" {
		m = DefaultModel
	}
	return &BatchServer{opts: o, model: m, files: map[string]*batchFile{}, batches: map[string]*fakeBatch{}}
}

var _ http.Handler = (*BatchServer)(nil)

func (s *BatchServer) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s_fake%06d", prefix, s.seq)
}

// ServeHTTP answers the Files and Batches endpoints.
func (s *BatchServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.APIKey != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.opts.APIKey)) != 1 {
			writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "", "Incorrect API key provided")
			return
		}
	}
	p := strings.TrimPrefix(strings.TrimRight(r.URL.Path, "/"), "/v1")
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "files" && r.Method == http.MethodPost:
		s.upload(w, r)
	case len(parts) == 2 && parts[0] == "files" && r.Method == http.MethodGet:
		s.fileObject(w, parts[1])
	case len(parts) == 3 && parts[0] == "files" && parts[2] == "content" && r.Method == http.MethodGet:
		s.fileContent(w, parts[1])
	case len(parts) == 1 && parts[0] == "batches" && r.Method == http.MethodPost:
		s.create(w, r)
	case len(parts) == 2 && parts[0] == "batches" && r.Method == http.MethodGet:
		s.get(w, parts[1])
	case len(parts) == 3 && parts[0] == "batches" && parts[2] == "cancel" && r.Method == http.MethodPost:
		s.cancel(w, parts[1])
	default:
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "", fmt.Sprintf("Unknown request URL: %s %s", r.Method, r.URL.Path))
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "", "", "encode answer")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (f *batchFile) object() map[string]any {
	return map[string]any{"id": f.ID, "object": "file", "bytes": len(f.Data), "created_at": f.Created,
		"filename": f.Name, "purpose": f.Purpose, "status": "processed"}
}

type batchInputLine struct {
	CustomID *string         `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

func (s *BatchServer) upload(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxFileBytes+1<<20)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "file", "Could not parse the multipart form: "+err.Error())
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	purpose := r.FormValue("purpose")
	if purpose != "batch" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "purpose", fmt.Sprintf("'%s' is not one of ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals'] - 'purpose'", purpose))
		return
	}
	fh, hdr, err := r.FormFile("file")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "file", "Missing required parameter: 'file'.")
		return
	}
	data, err := io.ReadAll(fh)
	_ = fh.Close()
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "file", "Could not read the file")
		return
	}
	if int64(len(data)) > s.opts.MaxFileBytes {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "file_too_large", "file", fmt.Sprintf("File is %d bytes; the limit for batch files is %d bytes.", len(data), s.opts.MaxFileBytes))
		return
	}
	if msg := s.checkLines(data); msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_file", "file", msg)
		return
	}
	s.mu.Lock()
	f := &batchFile{ID: s.nextID("file"), Name: hdr.Filename, Purpose: purpose, Data: data, Created: time.Now().Unix()}
	s.files[f.ID] = f
	s.mu.Unlock()
	writeJSON(w, f.object())
}

// checkLines validates a batch file's lines, returning a message for the
// first bad one.
func (s *BatchServer) checkLines(data []byte) string {
	seen := map[string]bool{}
	n := 0
	for i, raw := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		n++
		if n > s.opts.MaxFileLines {
			return fmt.Sprintf("The file has more than %d requests.", s.opts.MaxFileLines)
		}
		var l batchInputLine
		if err := json.Unmarshal(raw, &l); err != nil {
			return fmt.Sprintf("Line %d is not valid JSON.", i+1)
		}
		var body struct {
			Model    string            `json:"model"`
			Messages []json.RawMessage `json:"messages"`
		}
		switch {
		case l.CustomID == nil || *l.CustomID == "":
			return fmt.Sprintf("Line %d: missing custom_id.", i+1)
		case seen[*l.CustomID]:
			return fmt.Sprintf("Line %d: duplicate custom_id %q.", i+1, *l.CustomID)
		case l.Method != http.MethodPost:
			return fmt.Sprintf("Line %d: method must be POST.", i+1)
		case l.URL != "/v1/chat/completions":
			return fmt.Sprintf("Line %d: url must be /v1/chat/completions.", i+1)
		case json.Unmarshal(l.Body, &body) != nil:
			return fmt.Sprintf("Line %d: body must be a JSON object.", i+1)
		case body.Model == "" || len(body.Messages) == 0:
			return fmt.Sprintf("Line %d: body needs model and messages.", i+1)
		}
		seen[*l.CustomID] = true
	}
	if n == 0 {
		return "The file is empty."
	}
	return ""
}

func (s *BatchServer) fileObject(w http.ResponseWriter, id string) {
	s.mu.Lock()
	f, ok := s.files[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "", "id", fmt.Sprintf("No such File object: %s", id))
		return
	}
	writeJSON(w, f.object())
}

func (s *BatchServer) fileContent(w http.ResponseWriter, id string) {
	s.mu.Lock()
	f, ok := s.files[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "", "id", fmt.Sprintf("No such File object: %s", id))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(f.Data)
}

func (s *BatchServer) create(w http.ResponseWriter, r *http.Request) {
	var p struct {
		InputFileID      string            `json:"input_file_id"`
		Endpoint         string            `json:"endpoint"`
		CompletionWindow string            `json:"completion_window"`
		Metadata         map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "", "We could not parse the JSON body of your request.")
		return
	}
	if p.Endpoint != "/v1/chat/completions" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "endpoint", fmt.Sprintf("Invalid value: '%s'. This server supports '/v1/chat/completions'.", p.Endpoint))
		return
	}
	if p.CompletionWindow != "24h" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "completion_window", fmt.Sprintf("Invalid value: '%s'. Supported values are: '24h'.", p.CompletionWindow))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[p.InputFileID]
	if !ok || f.Purpose != "batch" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "input_file_id", fmt.Sprintf("Invalid 'input_file_id': '%s'. No batch file with that id.", p.InputFileID))
		return
	}
	now := time.Now().Unix()
	n := len(inputLines(f.Data))
	b := &fakeBatch{input: f.ID, lines: n, obj: map[string]any{
		"id": s.nextID("batch"), "object": "batch", "endpoint": p.Endpoint, "errors": nil,
		"input_file_id": f.ID, "completion_window": p.CompletionWindow, "status": "validating",
		"output_file_id": nil, "error_file_id": nil, "created_at": now, "expires_at": now + 86400,
		"request_counts": map[string]int{"total": 0, "completed": 0, "failed": 0},
		"metadata":       p.Metadata,
	}}
	s.batches[b.obj["id"].(string)] = b
	writeJSON(w, b.obj)
}

func (s *BatchServer) get(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "", "id", fmt.Sprintf("No batch found with id '%s'.", id))
		return
	}
	writeJSON(w, b.obj)
}

func (s *BatchServer) cancel(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok {
		writeError(w, http.StatusNotFound, "invalid_request_error", "", "id", fmt.Sprintf("No batch found with id '%s'.", id))
		return
	}
	switch b.obj["status"] {
	case "validating", "in_progress", "finalizing":
		b.obj["status"] = "cancelling"
		b.obj["cancelling_at"] = time.Now().Unix()
	case "cancelling":
	default:
		writeError(w, http.StatusConflict, "invalid_request_error", "", "", fmt.Sprintf("Cannot cancel a batch with status '%s'.", b.obj["status"]))
		return
	}
	writeJSON(w, b.obj)
}

// inputLines splits a batch file into its non-blank lines.
func inputLines(data []byte) [][]byte {
	var out [][]byte
	for _, raw := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(raw)) > 0 {
			out = append(out, raw)
		}
	}
	return out
}

// Status returns a batch's status ("" when unknown).
func (s *BatchServer) Status(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.batches[id]; ok {
		st, _ := b.obj["status"].(string)
		return st
	}
	return ""
}

// Batches returns the ids of every batch created, in order.
func (s *BatchServer) Batches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.batches))
	for id := range s.batches {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Advance moves a batch one step: validating → in_progress → finalizing →
// completed (every line answered, output and error files written);
// cancelling → cancelled (nothing answered). It returns the new status.
func (s *BatchServer) Advance(id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok {
		return "", fmt.Errorf("no batch %s", id)
	}
	now := time.Now().Unix()
	switch b.obj["status"] {
	case "validating":
		b.obj["status"], b.obj["in_progress_at"] = "in_progress", now
		b.obj["request_counts"] = map[string]int{"total": b.lines, "completed": 0, "failed": 0}
	case "in_progress":
		b.obj["status"], b.obj["finalizing_at"] = "finalizing", now
	case "finalizing":
		s.finish(b, b.lines)
		b.obj["status"], b.obj["completed_at"] = "completed", now
	case "cancelling":
		b.obj["status"], b.obj["cancelled_at"] = "cancelled", now
	default:
		return "", fmt.Errorf("batch %s is %s: nothing to advance", id, b.obj["status"])
	}
	return b.obj["status"].(string), nil
}

// Expire ends an in-progress batch as expired with only its first
// answered lines processed; the rest go to the error file with code
// batch_expired (or nowhere, with OmitExpired).
func (s *BatchServer) Expire(id string, answered int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok {
		return fmt.Errorf("no batch %s", id)
	}
	if st := b.obj["status"]; st != "in_progress" && st != "finalizing" {
		return fmt.Errorf("batch %s is %s, not in progress", id, st)
	}
	s.finish(b, answered)
	b.obj["status"], b.obj["expired_at"] = "expired", time.Now().Unix()
	return nil
}

// FailBatch ends a validating batch as failed with one error (as input
// validation does).
func (s *BatchServer) FailBatch(id, code, message string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok {
		return fmt.Errorf("no batch %s", id)
	}
	b.obj["status"], b.obj["failed_at"] = "failed", time.Now().Unix()
	b.obj["errors"] = map[string]any{"object": "list", "data": []any{map[string]any{"code": code, "message": message, "line": nil, "param": nil}}}
	return nil
}

// finish answers the first n lines of b into an output and an error file.
// Called with s.mu held.
func (s *BatchServer) finish(b *fakeBatch, n int) {
	lines := inputLines(s.files[b.input].Data)
	var out, errs bytes.Buffer
	completed, failed := 0, 0
	for i, raw := range lines {
		var l batchInputLine
		_ = json.Unmarshal(raw, &l) // validated at upload
		reqID := fmt.Sprintf("req_fake%06d", i)
		line := map[string]any{"id": fmt.Sprintf("batch_req_fake%06d", i), "custom_id": *l.CustomID, "error": nil}
		var status int
		var body []byte
		switch {
		case i >= n:
			if s.opts.OmitExpired {
				continue
			}
			line["response"] = nil
			line["error"] = map[string]any{"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}
			writeLine(&errs, line)
			failed++
			continue
		case s.opts.FailLine != nil && s.opts.FailLine(i, *l.CustomID):
			status = http.StatusInternalServerError
			body, _ = json.Marshal(map[string]any{"error": map[string]any{"message": "The server had an error while processing your request.", "type": "server_error", "param": nil, "code": nil}})
		default:
			status, body = completion(l.Body, s.model, fmt.Sprintf("chatcmpl-fakebatch-%d", i))
		}
		line["response"] = map[string]any{"status_code": status, "request_id": reqID, "body": json.RawMessage(body)}
		if status == http.StatusOK {
			writeLine(&out, line)
			completed++
		} else {
			writeLine(&errs, line)
			failed++
		}
	}
	now := time.Now().Unix()
	if out.Len() > 0 {
		f := &batchFile{ID: s.nextID("file"), Name: "batch_output.jsonl", Purpose: "batch_output", Data: out.Bytes(), Created: now}
		s.files[f.ID] = f
		b.obj["output_file_id"] = f.ID
	}
	if errs.Len() > 0 {
		f := &batchFile{ID: s.nextID("file"), Name: "batch_errors.jsonl", Purpose: "batch_output", Data: errs.Bytes(), Created: now}
		s.files[f.ID] = f
		b.obj["error_file_id"] = f.ID
	}
	b.obj["request_counts"] = map[string]int{"total": len(lines), "completed": completed, "failed": failed}
}

func writeLine(w *bytes.Buffer, v any) {
	b, _ := json.Marshal(v)
	w.Write(b)
	w.WriteByte('\n')
}

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
			} else if ans, in, o, err := converseAnswer(rec.ModelInput); err != nil {
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

// converseAnswer answers a Converse request body as the chat server would
// answer the same request: the Converse response body and its tokens.
func converseAnswer(input json.RawMessage) (map[string]any, int, int, error) {
	var in struct {
		Messages []struct {
			Role    string `json:"role"`
			Content []struct {
				Text  *string `json:"text"`
				Image *struct {
					Format string `json:"format"`
					Source struct {
						Bytes string `json:"bytes"`
					} `json:"source"`
				} `json:"image"`
			} `json:"content"`
		} `json:"messages"`
		System []struct {
			Text string `json:"text"`
		} `json:"system"`
		InferenceConfig *struct {
			MaxTokens *int `json:"maxTokens"`
		} `json:"inferenceConfig"`
	}
	if err := json.Unmarshal(input, &in); err != nil {
		return nil, 0, 0, errors.New("modelInput is not a Converse request body")
	}
	if len(in.Messages) == 0 {
		return nil, 0, 0, errors.New("messages must not be empty")
	}
	req := &request{}
	for _, s := range in.System {
		req.system += s.Text
		req.promptTokens += tokens(s.Text)
	}
	for i, m := range in.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, 0, 0, fmt.Errorf("messages.%d.role must be user or assistant", i)
		}
		req.promptTokens += messageOverhead
		for _, c := range m.Content {
			switch {
			case c.Text != nil:
				req.promptTokens += tokens(*c.Text)
			case c.Image != nil:
				b, err := base64.StdEncoding.DecodeString(c.Image.Source.Bytes)
				if err != nil {
					return nil, 0, 0, errors.New("image bytes are not valid base64")
				}
				cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
				if err != nil {
					return nil, 0, 0, fmt.Errorf("image could not be decoded (%v)", err)
				}
				req.images++
				req.promptTokens += imageTokens(cfg.Width, cfg.Height)
			default:
				return nil, 0, 0, errors.New("content blocks must be text or image")
			}
		}
	}
	if ic := in.InferenceConfig; ic != nil && ic.MaxTokens != nil {
		req.maxTokens = *ic.MaxTokens
	}
	content, finish, n := req.reply()
	stop := "end_turn"
	if finish == "length" {
		stop = "max_tokens"
	}
	return map[string]any{
		"output":     map[string]any{"message": map[string]any{"role": "assistant", "content": []any{map[string]any{"text": content}}}},
		"stopReason": stop,
		"usage":      map[string]int{"inputTokens": req.promptTokens, "outputTokens": n, "totalTokens": req.promptTokens + n},
		"metrics":    map[string]int{"latencyMs": 1},
	}, req.promptTokens, n, nil
}
