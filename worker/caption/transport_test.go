package caption_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/jobstest"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/storage/localstore"
	"github.com/llamapipe/llamapipe/storage/storagetest"
	"github.com/llamapipe/llamapipe/worker/caption"
	"github.com/llamapipe/llamapipe/worker/imageprep"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/llm/dashscope"
	"github.com/llamapipe/llamapipe/worker/llm/dashscope/dashscopetest"
	"github.com/llamapipe/llamapipe/worker/stage"
)

const dashKey = "sk-dash-transport-0123456789"

// dashModel is the real DashScope client against the fake service, which
// fetches image URLs as the real one does.
func dashModel(t *testing.T, fo dashscopetest.Options, o dashscope.Options) (*dashscopetest.Server, *dashscope.Client) {
	t.Helper()
	fo.APIKey = dashKey
	f := dashscopetest.New(fo)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	if o.Profile.Provider == "" {
		o.Profile = llm.Builtins()["dashscope"]
	}
	o.Profile.BaseURL, o.APIKey = srv.URL, dashKey
	c, err := dashscope.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func newStage(t *testing.T) *caption.Stage {
	t.Helper()
	s, err := caption.New(caption.Config{Cache: newMemCache(), Slots: 2,
		Open: func(_ context.Context, loc string) (storage.Store, error) { return localstore.Open(loc) }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func imageItem(out storage.Store, m caption.Model, log *slog.Logger, key string, data []byte) caption.Item {
	p := jobs.ItemPayload{Batch: "b1", Item: jobs.ItemID("src", key), Source: jobs.Ref{Location: "src", Key: key},
		Type: "jpeg", Kind: jobs.KindImage, Task: jobs.TaskCaption, Out: out.Location(), ResultBase: key}
	return caption.Item{Payload: p, Out: out, Model: m, Log: log,
		ReadSource: func(context.Context) ([]byte, error) { return data, nil }}
}

// workObjects lists what is left in out's work area.
func workObjects(t *testing.T, out storage.Store) []string {
	t.Helper()
	var keys []string
	for info, err := range out.List(context.Background(), ".llamapipe/work/", storage.ListOptions{Recursive: true}) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}

// With a DashScope profile and an S3 output, each prepared image is put in
// the work area, the service fetches it from MinIO through its presigned
// URL and sees exactly the prepared image; the object is gone afterwards,
// and no signature reaches the results or the logs.
func TestCaptionByURLFromMinIO(t *testing.T) {
	out := storagetest.NewS3Store(t, "out")
	fake, model := dashModel(t, dashscopetest.Options{MaxSide: 1344}, dashscope.Options{})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newStage(t)
	ctx := context.Background()
	files := jobstest.CorpusFiles(t, "*.jpg", "images", "photos")[:3]
	var want []int
	for _, f := range files {
		data := jobstest.ReadFile(t, f)
		o, err := s.Caption(ctx, imageItem(out, model, log, filepath.Base(f), data), data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(o.Results) != 1 {
			t.Fatalf("%s: results %v", f, o.Results)
		}
		prep, err := imageprep.Prepare(ctx, data, caption.ImageOptions(imageprep.Options{}, model.Profile()))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, prep.Width, prep.Height)
		rc, err := out.Get(ctx, o.Results[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(b), "White mug") || strings.Contains(string(b), "X-Amz-") {
			t.Errorf("%s: result %s", o.Results[0], b)
		}
	}
	got := fake.Images()
	if len(got) != len(files) {
		t.Fatalf("the service got %d images, want %d", len(got), len(files))
	}
	for i, img := range got {
		if !img.ByURL || img.Width != want[2*i] || img.Height != want[2*i+1] {
			t.Errorf("image %d: %+v, want fetched by URL at the prepared %dx%d", i, img, want[2*i], want[2*i+1])
		}
		if !strings.Contains(img.URL, "/.llamapipe/work/b1/") {
			t.Errorf("image %d came from %s, want the batch's work area", i, img.URL)
		}
	}
	if left := workObjects(t, out); len(left) != 0 {
		t.Errorf("work objects left: %v", left)
	}
	if strings.Contains(logs.String(), "X-Amz-") {
		t.Errorf("logs carry a presigned URL:\n%s", logs.String())
	}
}

// A URL that has expired by the time the service fetches it fails the
// call as permanent, saying what to do, without the signature; the
// object is removed all the same.
func TestCaptionByURLExpired(t *testing.T) {
	out := storagetest.NewS3Store(t, "out")
	// The URL lives 1s; the service fetches it after 2.1s.
	_, model := dashModel(t, dashscopetest.Options{FetchDelay: 2100 * time.Millisecond}, dashscope.Options{ImageURLLifetime: time.Second})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	data := jobstest.ReadFile(t, jobstest.CorpusFiles(t, "*.jpg", "images", "photos")[0])
	_, err := newStage(t).Caption(context.Background(), imageItem(out, model, log, "a.jpg", data), data)
	if llm.KindOf(err) != llm.Permanent {
		t.Fatalf("expired URL: %v, want a permanent provider error", err)
	}
	for _, want := range []string{"Download the media resource failed", "HTTP 403", "presigned URL", "--image-transport inline"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "X-Amz-Signature") || strings.Contains(err.Error(), "X-Amz-Credential") || strings.Contains(logs.String(), "X-Amz-") {
		t.Errorf("the signature shows: error %q, logs %q", err, logs.String())
	}
	if left := workObjects(t, out); len(left) != 0 {
		t.Errorf("work objects left: %v", left)
	}
}

// Where the output cannot presign (a local folder), DashScope's preferred
// url falls back to inline; a required url (--image-transport url) fails
// the item with what to do, before any call.
func TestCaptionLocalOutputTransport(t *testing.T) {
	out := openDir(t, t.TempDir())
	fake, model := dashModel(t, dashscopetest.Options{}, dashscope.Options{})
	data := jobstest.ReadFile(t, jobstest.CorpusFiles(t, "*.jpg", "images", "photos")[0])
	discard := slog.New(slog.DiscardHandler)
	if _, err := newStage(t).Caption(context.Background(), imageItem(out, model, discard, "a.jpg", data), data); err != nil {
		t.Fatal(err)
	}
	if got := fake.Images(); len(got) != 1 || got[0].ByURL {
		t.Fatalf("images %+v: want one inline", got)
	}
	prof := llm.Builtins()["dashscope"]
	prof.ImageURLRequired = true
	_, required := dashModel(t, dashscopetest.Options{}, dashscope.Options{Profile: prof})
	_, err := newStage(t).Caption(context.Background(), imageItem(out, required, discard, "b.jpg", data), data)
	var pe *stage.PermanentError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "--image-transport url") || !strings.Contains(err.Error(), "s3://") {
		t.Fatalf("required url to a local output: %v, want a permanent failure saying what to do", err)
	}
	if fake.Calls() != 1 {
		t.Errorf("%d calls: the refused item reached the service", fake.Calls())
	}
}

// presignSeen records whether a request's image could go by URL.
type presignSeen struct {
	captionModel
	prof    llm.Profile
	presign []bool
}

func (m *presignSeen) Profile() llm.Profile { return m.prof }
func (m *presignSeen) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	m.presign = append(m.presign, req.Parts[1].Image.Presign != nil)
	return m.captionModel.Complete(ctx, req)
}

// An OpenAI-compatible preset sends images inline even to an S3 output:
// nothing is put in the work area and the image has no Presign.
func TestCaptionOpenAIPresetStaysInline(t *testing.T) {
	out := storagetest.NewS3Store(t, "out")
	data := jobstest.ReadFile(t, jobstest.CorpusFiles(t, "*.jpg", "images", "photos")[0])
	for _, preset := range []string{"groq", "together", "qianfan", "reseller", "dashscope"} {
		m := &presignSeen{prof: llm.Builtins()[preset]}
		it := imageItem(out, m, slog.New(slog.DiscardHandler), preset+".jpg", data)
		if _, err := newStage(t).Caption(context.Background(), it, data); err != nil {
			t.Fatalf("%s: %v", preset, err)
		}
		// dashscope is the control: the same path does presign for it.
		if want := preset == "dashscope"; len(m.presign) != 1 || m.presign[0] != want {
			t.Errorf("%s: presign offered %v, want %v", preset, m.presign, want)
		}
	}
}
