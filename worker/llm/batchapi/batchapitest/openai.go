package batchapitest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
)

// BatchOptions configure a BatchServer.
type BatchOptions struct {
	// APIKey, when set, is required as a bearer token. Default "": none.
	APIKey string
	// Model is the model named in answers. Default fakeserver.DefaultModel.
	Model string
	// FailLine, when set, is asked for every line as it is processed; a
	// true answer puts the line in the error file with HTTP 500
	// server_error. Default nil: no injected failures.
	FailLine func(index int, customID string) bool
	// FailUpload, when set, is asked for every file upload (n counts them
	// from 1); a true answer is an HTTP 502 with an HTML body, as a broken
	// proxy in front of the provider gives. Default nil: uploads work.
	FailUpload func(n int) bool
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
	uploads int
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
		m = fakeserver.DefaultModel
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
			fakeserver.WriteError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "", "Incorrect API key provided")
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
		fakeserver.WriteError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "", fmt.Sprintf("Unknown request URL: %s %s", r.Method, r.URL.Path))
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fakeserver.WriteError(w, http.StatusInternalServerError, "server_error", "", "", "encode answer")
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
	s.mu.Lock()
	s.uploads++
	n := s.uploads
	s.mu.Unlock()
	if s.opts.FailUpload != nil && s.opts.FailUpload(n) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1>upstream file store unavailable</body></html>")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxFileBytes+1<<20)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		fakeserver.WriteError(w, http.StatusBadRequest, "invalid_request_error", "", "file", "Could not parse the multipart form: "+err.Error())
		return
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	purpose := r.FormValue("purpose")
	if purpose != "batch" {
		fakeserver.WriteError(w, http.StatusBadRequest, "invalid_request_error", "", "purpose", fmt.Sprintf("'%s' is not one of ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals'] - 'purpose'", purpose))
		return
	}
	fh, hdr, err := r.FormFile("file")
	if err != nil {
		fakeserver.WriteError(w, http.StatusBadRequest, "invalid_request_error", "", "file", "Missing required parameter: 'file'.")
		return
	}
	data, err := io.ReadAll(fh)
	_ = fh.Close()
	if err != nil {
		fakeserver.WriteError(w, http.StatusBadRequest, "invalid_request_error", "", "file", "Could not read the file")
		return
	}
	if int64(len(data)) > s.opts.MaxFileBytes {
		fakeserver.WriteError(w, http.StatusBadRequest, "invalid_request_error", "file_too_large", "file", fmt.Sprintf("File is %d bytes; the limit for batch files is %d bytes.", len(data), s.opts.MaxFileBytes))
		return
	}
	if msg := s.checkLines(data); msg != "" {
		fakeserver.WriteError(w, http.StatusBadRequest, "invalid_request_error", "invalid_file", "file", msg)
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
		fakeserver.WriteError(w, http.StatusNotFound, "invalid_request_error", "", "id", fmt.Sprintf("No such File object: %s", id))
		return
	}
	writeJSON(w, f.object())
}

func (s *BatchServer) fileContent(w http.ResponseWriter, id string) {
	s.mu.Lock()
	f, ok := s.files[id]
	s.mu.Unlock()
	if !ok {
		fakeserver.WriteError(w, http.StatusNotFound, "invalid_request_error", "", "id", fmt.Sprintf("No such File object: %s", id))
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
		fakeserver.WriteError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "", "We could not parse the JSON body of your request.")
		return
	}
	if p.Endpoint != "/v1/chat/completions" {
		fakeserver.WriteError(w, http.StatusBadRequest, "invalid_request_error", "", "endpoint", fmt.Sprintf("Invalid value: '%s'. This server supports '/v1/chat/completions'.", p.Endpoint))
		return
	}
	if p.CompletionWindow != "24h" {
		fakeserver.WriteError(w, http.StatusBadRequest, "invalid_request_error", "", "completion_window", fmt.Sprintf("Invalid value: '%s'. Supported values are: '24h'.", p.CompletionWindow))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[p.InputFileID]
	if !ok || f.Purpose != "batch" {
		fakeserver.WriteError(w, http.StatusBadRequest, "invalid_request_error", "", "input_file_id", fmt.Sprintf("Invalid 'input_file_id': '%s'. No batch file with that id.", p.InputFileID))
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
		fakeserver.WriteError(w, http.StatusNotFound, "invalid_request_error", "", "id", fmt.Sprintf("No batch found with id '%s'.", id))
		return
	}
	writeJSON(w, b.obj)
}

func (s *BatchServer) cancel(w http.ResponseWriter, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok {
		fakeserver.WriteError(w, http.StatusNotFound, "invalid_request_error", "", "id", fmt.Sprintf("No batch found with id '%s'.", id))
		return
	}
	switch b.obj["status"] {
	case "validating", "in_progress", "finalizing":
		b.obj["status"] = "cancelling"
		b.obj["cancelling_at"] = time.Now().Unix()
	case "cancelling":
	default:
		fakeserver.WriteError(w, http.StatusConflict, "invalid_request_error", "", "", fmt.Sprintf("Cannot cancel a batch with status '%s'.", b.obj["status"]))
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
			status, body = fakeserver.Completion(l.Body, s.model, fmt.Sprintf("chatcmpl-fakebatch-%d", i))
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
