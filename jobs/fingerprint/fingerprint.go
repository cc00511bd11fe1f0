// Package fingerprint names what a result was made from, so that a re-run
// skips what it already paid for: an item's fingerprint (its source's
// ETag, the task, the prompt wording, the model and the options that change
// the answer), the marker object left beside its results, and the content
// key identical inputs share.
package fingerprint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
)

// Prefix is where, under an output location, workers leave one
// empty marker object per result: "<prefix><result base>.<task>.<fp>". A
// re-run lists this prefix once — not one request per object — and skips
// items whose fingerprint is there.
const Prefix = ".llamapipe/fingerprints/"

// Of identifies what a result was made from: the source's ETag,
// the task, the prompt wording, the model and the options that change the
// answer. Same fingerprint, same result: no need to pay for it again.
func Of(etag, task, promptVersion, model string, o jobs.Options) string {
	parts := []string{"fp1", etag, task, promptVersion, model, o.Language, fmt.Sprint(o.MaxOutputTokens), o.Products}
	if o.KeepText && task == jobs.TaskSummarize { // more results: a run that keeps the text is not skipped (fingerprints unchanged otherwise)
		parts = append(parts, "keep_text")
	}
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:6])
}

// Key is the marker key of one result.
func Key(resultBase, task, fp string) string {
	return Prefix + resultBase + "." + task + "." + fp
}

// ContentKey identifies a result by the bytes of its source (their SHA-256)
// instead of its location: identical images anywhere are captioned once.
func ContentKey(sha256hex, task, promptVersion, model string, o jobs.Options) string {
	return Of("sha256:"+sha256hex, task, promptVersion, model, o)
}
