// Package workarea names the objects a batch keeps in the work area of its
// output location (".llamapipe/work/<batch>/") while it runs: a long
// document's chunks and map answers, the model answers kept until an
// item's result is stored. It knows nothing else of jobs.
package workarea

import "fmt"

// WorkPrefix is the key prefix (ending in "/") under which a long
// document's chunk objects and map answers are kept in the output
// location while it is summarized.
func WorkPrefix(batch, item string) string { return ".llamapipe/work/" + batch + "/" + item + "/" }

// ChunkKey is the key of chunk index's object, e.g.
// ".llamapipe/work/<batch>/<item>/chunk-0001.pdf" for ext "pdf".
func ChunkKey(batch, item string, index int, ext string) string {
	return fmt.Sprintf("%schunk-%04d.%s", WorkPrefix(batch, item), index, ext)
}

// MapResultKey is the key of chunk index's map answer (JSON).
func MapResultKey(batch, item string, index int) string {
	return fmt.Sprintf("%smap-%04d.json", WorkPrefix(batch, item), index)
}

// AnswerKey is where a model's answer to one of an item's requests is kept
// (the validated JSON, its usage, cost and model) until the item's result
// is stored, when Redis (jobs.KeptAnswersKey) refuses it or it is over
// 256 KB (stage.Keeper). name tells the requests of an item apart
// ("caption", "summary", "reduce"); the key is deterministic per item and
// request, and deleted once the item is recorded. It is directly in the batch's work folder,
// not under the item's work prefix: on a local folder a folder per item
// would cost a mkdir and an rmdir per item (the most expensive file-system
// calls of a short item, measured for issue 16).
func AnswerKey(batch, item, name string) string {
	return ".llamapipe/work/" + batch + "/answer-" + item + "-" + name + ".json"
}
