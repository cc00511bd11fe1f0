package batchapitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/prompts"
	"github.com/llamapipe/llamapipe/storage/storagetest"
	"github.com/llamapipe/llamapipe/worker/llm/fakeserver"
	"github.com/llamapipe/llamapipe/worker/llm/internal/llmtest"
)

func startBatch(t *testing.T, o BatchOptions) (*BatchServer, string) {
	t.Helper()
	fb := NewBatch(o)
	srv := httptest.NewServer(fb)
	t.Cleanup(srv.Close)
	return fb, srv.URL
}

// call sends a request and decodes the JSON answer (nil body: no body).
func call(t *testing.T, method, url, contentType string, body []byte, key string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %.200s", method, url, raw)
	}
	return resp.StatusCode, out
}

func upload(t *testing.T, base, purpose string, data []byte, key string) (int, map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("purpose", purpose)
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	_, _ = fw.Write(data)
	_ = mw.Close()
	return call(t, http.MethodPost, base+"/v1/files", mw.FormDataContentType(), buf.Bytes(), key)
}

func chatLine(id, body string) string {
	return fmt.Sprintf(`{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":%s}`, id, body)
}

const okBody = `{"model":"m","messages":[{"role":"system","content":"Answer in JSON."},{"role":"user","content":"Summarize the lease."}],"max_completion_tokens":4000}`

func errParam(ans map[string]any) string {
	e, _ := ans["error"].(map[string]any)
	p, _ := e["param"].(string)
	return p
}

// TestBatchUploadValidatesLines: the file endpoint refuses what a real
// Batch API refuses, naming the parameter.
func TestBatchUploadValidatesLines(t *testing.T) {
	_, base := startBatch(t, BatchOptions{APIKey: "k", MaxFileLines: 3})
	good := chatLine("a", okBody) + "\n" + chatLine("b", okBody) + "\n"
	for name, c := range map[string]struct {
		purpose, data string
		key           string
		status        int
	}{
		"wrong purpose":   {"fine-tune", good, "k", 400},
		"duplicate id":    {"batch", chatLine("a", okBody) + "\n" + chatLine("a", okBody), "k", 400},
		"missing id":      {"batch", `{"method":"POST","url":"/v1/chat/completions","body":` + okBody + `}`, "k", 400},
		"wrong method":    {"batch", strings.Replace(chatLine("a", okBody), `"POST"`, `"GET"`, 1), "k", 400},
		"wrong url":       {"batch", strings.Replace(chatLine("a", okBody), "/v1/chat/completions", "/v1/embeddings", 1), "k", 400},
		"body no model":   {"batch", chatLine("a", `{"messages":[{"role":"user","content":"x"}]}`), "k", 400},
		"body no message": {"batch", chatLine("a", `{"model":"m","messages":[]}`), "k", 400},
		"not json":        {"batch", "{not json\n", "k", 400},
		"empty":           {"batch", "\n\n", "k", 400},
		"too many lines":  {"batch", good + chatLine("c", okBody) + "\n" + chatLine("d", okBody), "k", 400},
		"wrong key":       {"batch", good, "other", 401},
		"good":            {"batch", good, "k", 200},
	} {
		status, ans := upload(t, base, c.purpose, []byte(c.data), c.key)
		if status != c.status {
			t.Errorf("%s: HTTP %d, want %d: %v", name, status, c.status, ans)
			continue
		}
		if status == 400 && errParam(ans) == "" {
			t.Errorf("%s: error names no parameter: %v", name, ans)
		}
		if status == 200 && (ans["purpose"] != "batch" || ans["bytes"] != float64(len(good))) {
			t.Errorf("good file: %v", ans)
		}
	}
}

// TestBatchLifecycle: creation is validated, the batch moves only when
// advanced, and the output and error files hold one answer per line.
func TestBatchLifecycle(t *testing.T) {
	fb, base := startBatch(t, BatchOptions{FailLine: func(i int, _ string) bool { return i == 2 }})
	tmpl, err := prompts.Load(prompts.Caption)
	if err != nil {
		t.Fatal(err)
	}
	img := llmtest.JPEG(t, 400, 300)
	imgBody, _ := json.Marshal(map[string]any{"model": "m", "messages": []any{
		map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "text", "text": "Describe the product."},
			map[string]any{"type": "image_url", "image_url": map[string]string{"url": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(img.Data)}},
		}}},
		"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "caption", "schema": json.RawMessage(tmpl.Schema)}},
	})
	badImage := `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,bm90IGFuIGltYWdl"}}]}]}`
	data := strings.Join([]string{chatLine("cap", string(imgBody)), chatLine("bad", badImage), chatLine("fail", okBody), chatLine("sum", okBody)}, "\n")
	status, file := upload(t, base, "batch", []byte(data), "")
	if status != 200 {
		t.Fatalf("upload: %d %v", status, file)
	}
	fileID := file["id"].(string)
	create := func(body string) (int, map[string]any) {
		return call(t, http.MethodPost, base+"/v1/batches", "application/json", []byte(body), "")
	}
	for name, body := range map[string]string{
		"input_file_id":     `{"input_file_id":"file-nosuch","endpoint":"/v1/chat/completions","completion_window":"24h"}`,
		"endpoint":          `{"input_file_id":"` + fileID + `","endpoint":"/v1/embeddings","completion_window":"24h"}`,
		"completion_window": `{"input_file_id":"` + fileID + `","endpoint":"/v1/chat/completions","completion_window":"48h"}`,
	} {
		if st, ans := create(body); st != 400 || errParam(ans) != name {
			t.Errorf("bad %s: %d %v", name, st, ans)
		}
	}
	st, b := create(`{"input_file_id":"` + fileID + `","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"name":"x"}}`)
	if st != 200 || b["status"] != "validating" || b["output_file_id"] != nil {
		t.Fatalf("create: %d %v", st, b)
	}
	id := b["id"].(string)
	if err := fb.Expire(id, 1); err == nil {
		t.Error("a validating batch expired")
	}
	for _, want := range []string{"in_progress", "finalizing", "completed"} {
		got, err := fb.Advance(id)
		if err != nil || got != want {
			t.Fatalf("advance: %s %v, want %s", got, err, want)
		}
		if _, b = call(t, http.MethodGet, base+"/v1/batches/"+id, "", nil, ""); b["status"] != want {
			t.Fatalf("GET status %v, want %s", b["status"], want)
		}
	}
	if _, err := fb.Advance(id); err == nil {
		t.Error("a completed batch advanced")
	}
	if st, _ := call(t, http.MethodPost, base+"/v1/batches/"+id+"/cancel", "", nil, ""); st != http.StatusConflict {
		t.Errorf("cancel of a completed batch: %d", st)
	}
	counts := b["request_counts"].(map[string]any)
	if counts["total"] != 4.0 || counts["completed"] != 2.0 || counts["failed"] != 2.0 {
		t.Fatalf("counts %v", counts)
	}
	lines := func(fileID string) map[string]map[string]any {
		resp, err := http.Get(base + "/v1/files/" + fileID + "/content")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		out := map[string]map[string]any{}
		for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				t.Fatal(err)
			}
			out[m["custom_id"].(string)] = m["response"].(map[string]any)
		}
		return out
	}
	out, errs := lines(b["output_file_id"].(string)), lines(b["error_file_id"].(string))
	if len(out) != 2 || len(errs) != 2 {
		t.Fatalf("output %d lines, errors %d", len(out), len(errs))
	}
	if errs["bad"]["status_code"] != 400.0 || errs["fail"]["status_code"] != 500.0 {
		t.Errorf("error lines %v", errs)
	}
	capBody := out["cap"]["body"].(map[string]any)
	msg := capBody["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	if err := tmpl.Validate([]byte(msg)); err != nil {
		t.Errorf("caption answer does not follow its schema: %v", err)
	}
	usage := capBody["usage"].(map[string]any)
	if usage["prompt_tokens"].(float64) < float64(fakeserver.ImageTokens(400, 300)) {
		t.Errorf("caption usage %v does not count the image", usage)
	}
	// The input file is readable back as uploaded.
	resp, err := http.Get(base + "/v1/files/" + fileID + "/content")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(raw) != data {
		t.Error("input file content differs from the upload")
	}
}

// TestBedrockFakeValidatesAndAnswers: the fake control plane refuses bad
// jobs the way Bedrock does and answers Converse records.
func TestBedrockFakeValidatesAndAnswers(t *testing.T) {
	store := storagetest.NewLocalStore(t)
	fake := NewBedrock(BedrockOptions{Store: store, MinRecords: 2})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	ctx := context.Background()
	base := strings.TrimRight(store.Location(), "/")
	var in bytes.Buffer
	for i := range 3 {
		fmt.Fprintf(&in, `{"recordId":"r%d","modelInput":{"system":[{"text":"Answer in JSON."}],"messages":[{"role":"user","content":[{"text":"Summarize lease %d."}]}],"inferenceConfig":{"maxTokens":%d}}}`+"\n", i, i, 5+i*5000)
	}
	in.WriteString(`{"recordId":"bad","modelInput":{"messages":[]}}` + "\n")
	if err := store.Put(ctx, "w/in/a.jsonl", bytes.NewReader(in.Bytes()), int64(in.Len()), ""); err != nil {
		t.Fatal(err)
	}
	job := func(input, output, role string) (int, map[string]any) {
		b, _ := json.Marshal(map[string]any{"jobName": "j", "modelId": "m", "roleArn": role, "modelInvocationType": "Converse",
			"inputDataConfig":  map[string]any{"s3InputDataConfig": map[string]any{"s3Uri": input}},
			"outputDataConfig": map[string]any{"s3OutputDataConfig": map[string]any{"s3Uri": output}}})
		return call(t, http.MethodPost, srv.URL+"/model-invocation-job", "application/json", b, "")
	}
	if st, _ := job(base+"/w/in/a.jsonl", base+"/w/out/", ""); st != 400 {
		t.Errorf("no role: %d", st)
	}
	if st, _ := job("s3://elsewhere/a.jsonl", base+"/w/out/", "r"); st != 400 {
		t.Errorf("input outside the store: %d", st)
	}
	if st, _ := job(base+"/w/in/missing.jsonl", base+"/w/out/", "r"); st != 400 {
		t.Errorf("missing input: %d", st)
	}
	st, ans := job(base+"/w/in/a.jsonl", base+"/w/out/", "r")
	if st != 200 {
		t.Fatalf("create: %d %v", st, ans)
	}
	arn := ans["jobArn"].(string)
	if st, _ := call(t, http.MethodGet, srv.URL+"/model-invocation-job/nosuch", "", nil, ""); st != 404 {
		t.Errorf("unknown job: %d", st)
	}
	for _, want := range []string{"Validating", "InProgress", "Completed"} {
		if got, err := fake.Advance(ctx, arn); err != nil || got != want {
			t.Fatalf("advance: %s %v, want %s", got, err, want)
		}
	}
	_, got := call(t, http.MethodGet, srv.URL+"/model-invocation-job/"+arn, "", nil, "")
	if got["status"] != "Completed" || got["successRecordCount"] != 3.0 || got["errorRecordCount"] != 1.0 {
		t.Fatalf("job %v", got)
	}
	id := arn[strings.LastIndexByte(arn, '/')+1:]
	rc, err := store.Get(ctx, "w/out/"+id+"/a.jsonl.out", nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	recs := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	if len(recs) != 4 {
		t.Fatalf("%d output records", len(recs))
	}
	for i, r := range recs {
		var o struct {
			RecordID    string `json:"recordId"`
			ModelOutput *struct {
				StopReason string `json:"stopReason"`
				Usage      struct {
					OutputTokens int `json:"outputTokens"`
				} `json:"usage"`
			} `json:"modelOutput"`
			Error *struct {
				ErrorCode int `json:"errorCode"`
			} `json:"error"`
		}
		if err := json.Unmarshal(r, &o); err != nil {
			t.Fatal(err)
		}
		switch {
		case o.RecordID == "bad":
			if o.Error == nil || o.Error.ErrorCode != 400 {
				t.Errorf("bad record: %s", r)
			}
		case i == 0: // maxTokens 5: cut off
			if o.ModelOutput == nil || o.ModelOutput.StopReason != "max_tokens" || o.ModelOutput.Usage.OutputTokens != 5 {
				t.Errorf("record %d: %s", i, r)
			}
		default:
			if o.ModelOutput == nil || o.ModelOutput.StopReason != "end_turn" {
				t.Errorf("record %d: %.300s", i, r)
			}
		}
	}
	if _, err := store.Stat(ctx, "w/out/"+id+"/manifest.json.out"); err != nil {
		t.Errorf("manifest: %v", err)
	}
}
