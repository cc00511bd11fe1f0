package caption

import (
	"context"
	"fmt"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/workarea"
	"github.com/llamapipe/llamapipe/storage"
	"github.com/llamapipe/llamapipe/worker/llm"
	"github.com/llamapipe/llamapipe/worker/stage"
)

// Transport says how the images of a batch writing to out reach a model
// with profile prof: llm.ImageURL when the profile asks for URLs
// (Profile.ImageTransport) and out can presign them (storage.Presigner:
// S3), else llm.ImageInline. When the profile requires URLs
// (--image-transport url) and out cannot presign, it is an error saying
// what to do; when URLs are only the profile's preference (DashScope's
// presets), images then go inline.
func Transport(prof llm.Profile, out storage.Store) (string, error) {
	if llm.ImageTransportOf(prof) != llm.ImageURL {
		return llm.ImageInline, nil
	}
	if _, ok := out.(storage.Presigner); ok {
		return llm.ImageURL, nil
	}
	if prof.ImageURLRequired {
		return "", fmt.Errorf("--image-transport url: the output %s cannot hand out presigned URLs (only s3:// outputs can): "+
			"write to an s3:// output or use --image-transport inline", out.Location())
	}
	return llm.ImageInline, nil
}

// ImageWorkKey is where an item's prepared image waits, in its output's
// work area, for the provider to fetch it by URL (deterministic: a retry
// overwrites it).
func ImageWorkKey(p jobs.ItemPayload) string {
	return workarea.WorkPrefix(p.Batch, p.Item) + "image.jpg"
}

// byURL makes img go by URL when the item's transport says so: the
// prepared bytes are put in the output's work area and img.Presign hands
// out a GET URL of them (presigned by the provider client right before
// each call, for as long as the call may take). The returned func removes
// the object once the call has ended (a retry puts it again).
func (s *Stage) byURL(ctx context.Context, it Item, img *llm.Image) (func(), error) {
	tr, err := Transport(it.Model.Profile(), it.Out)
	if err != nil {
		return nil, stage.Permanent(err.Error(), err)
	}
	if tr != llm.ImageURL {
		return func() {}, nil
	}
	ps := it.Out.(storage.Presigner)
	key := ImageWorkKey(it.Payload)
	if err := stage.Put(ctx, it.Out, key, img.Data, img.MIME); err != nil {
		return nil, fmt.Errorf("put the image for the provider to fetch: %w", err)
	}
	img.Presign = func(ctx context.Context, ttl time.Duration) (string, error) { return ps.PresignGet(ctx, key, ttl) }
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := it.Out.Delete(ctx, key); err != nil {
			it.Log.WarnContext(ctx, "image for the provider not removed", "key", key, "error", err.Error())
		}
	}, nil
}

// Describe says in one line how images go to a model with profile prof
// when the batch writes to out (nil: no output chosen yet), for the plan;
// "" when images go inline as everywhere else (the profile asks for
// nothing else).
func Describe(prof llm.Profile, out storage.Store) string {
	if llm.ImageTransportOf(prof) != llm.ImageURL {
		return ""
	}
	if out == nil {
		return "Images: by presigned URL from the output's work area when the output is an s3:// location (the provider fetches them), else inline"
	}
	switch tr, err := Transport(prof, out); {
	case err != nil:
		return "Images: " + err.Error()
	case tr == llm.ImageURL:
		return "Images: by presigned URL from " + out.Location() + "/" + workarea.WorkPrefix("<batch>", "<item>") +
			" (the provider fetches them; each URL is presigned right before its call and the object removed after it)"
	default:
		return "Images: inline (base64): the output " + out.Location() + " cannot hand out presigned URLs, which the provider prefers; write to an s3:// output to send them by URL"
	}
}
