package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// FingerprintPrefix is where, under an output location, workers leave one
// empty marker object per result: "<prefix><result base>.<task>.<fp>". A
// re-run lists this prefix once — not one request per object — and skips
// items whose fingerprint is there.
const FingerprintPrefix = ".llamapipe/fingerprints/"

// Fingerprint identifies what a result was made from: the source's ETag,
// the task, the prompt wording, the model and the options that change the
// answer. Same fingerprint, same result: no need to pay for it again.
func Fingerprint(etag, task, promptVersion, model string, o Options) string {
	parts := []string{"fp1", etag, task, promptVersion, model, o.Language, fmt.Sprint(o.MaxOutputTokens), o.Products}
	if o.KeepText && task == TaskSummarize { // more results: a run that keeps the text is not skipped (fingerprints unchanged otherwise)
		parts = append(parts, "keep_text")
	}
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:6])
}

// FingerprintKey is the marker key of one result.
func FingerprintKey(resultBase, task, fp string) string {
	return FingerprintPrefix + resultBase + "." + task + "." + fp
}

// ContentKey identifies a result by the bytes of its source (their SHA-256)
// instead of its location: identical images anywhere are captioned once.
func ContentKey(sha256hex, task, promptVersion, model string, o Options) string {
	return Fingerprint("sha256:"+sha256hex, task, promptVersion, model, o)
}

// ResultKeys lists the result keys a task writes for an item.
func ResultKeys(resultBase, task string) []string {
	if task == TaskCaption {
		return []string{ResultKey(resultBase, SuffixCaptionJSON)}
	}
	return []string{ResultKey(resultBase, SuffixSummaryJSON), ResultKey(resultBase, SuffixSummaryMD)}
}
