package stage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"

	"github.com/llamapipe/llamapipe/jobs/workarea"
	"github.com/llamapipe/llamapipe/storage"
)

// A model call is paid for; writing its result may fail for reasons of our
// own (a store that times out, refuses access or cannot take the name).
// So that such a failure never pays the model twice, a stage keeps the
// model's answer in the batch's work area (workarea.AnswerKey) as soon as it
// is in, and an attempt that finds a kept answer only writes the result.
// When the work area cannot be written either (the same failing store), the
// answer is kept in Redis (Stash) for a while. The worker drops kept
// answers once it records the item.
//
// A kept answer lives only until the result is stored, so it is written
// without being made durable (storage.PutVolatile: on a local folder, no
// sync). A crash of the worker does not lose it; a power loss may. Then a
// retry that finds no kept answer looks for the result an earlier attempt
// stored (Keeper.Stored, StoredAnswer): a stored result is the answer, and
// the model is not asked again; only where no result was stored either is
// the model asked again.

// Stash keeps an item's answers in Redis when the output store's work area
// cannot be written (*jobs.Tracker has these methods).
type Stash interface {
	KeepAnswer(ctx context.Context, batch, item, name string, answer []byte) error
	KeptAnswer(ctx context.Context, batch, item, name string) ([]byte, bool, error)
	DropKeptAnswers(ctx context.Context, batch, item string) error
}

// Keeper keeps one item's model answers until its results are stored. The
// zero Keeper keeps nothing (Load finds nothing).
type Keeper struct {
	// Out is the item's output store; answers go to its work area.
	Out storage.Store
	// Stash is the fallback when Out cannot be written. Nil: none.
	Stash Stash
	// Batch and Item name the item.
	Batch, Item string
	// Log reports answers that could not be kept. Nil: nothing is logged.
	Log *slog.Logger
	// Fresh: this is the task's first attempt, so no earlier attempt can
	// have kept an answer: Load finds nothing without looking (no store
	// read, no Redis call on the common path).
	Fresh bool
	// Stored, when set, is asked by Load on a retry that finds no answer
	// kept under name: the answer held by the result an earlier attempt
	// stored (see StoredAnswer), whose kept answer a power loss took.
	Stored func(ctx context.Context, name string) (Kept, bool, error)
}

// Kept is one kept answer: the validated answer, and what the item had
// cost and asked when it was in (restored into the outcome by Restore, so
// the item's entry — and its tenant's charge — carries the calls made).
type Kept struct {
	V         int     `json:"v"`
	Answer    Answer  `json:"answer"`
	Outcome   Outcome `json:"outcome"`
	Requests  int     `json:"requests"`
	Estimated bool    `json:"estimated,omitempty"`
	// InRedis: the answer was kept in (or loaded from) the Redis fallback.
	InRedis bool `json:"-"`
}

// Restore sets o's tokens, cost, currency and model to the kept ones.
func (k Kept) Restore(o *Outcome) {
	o.InputTokens, o.OutputTokens, o.Cost = k.Outcome.InputTokens, k.Outcome.OutputTokens, k.Outcome.Cost
	if k.Outcome.Currency != "" {
		o.Currency = k.Outcome.Currency
	}
	if k.Outcome.Model != "" {
		o.Model = k.Outcome.Model
	}
}

// Enabled reports whether k keeps anything (it has a store and an item).
func (k Keeper) Enabled() bool { return k.Out != nil && k.Batch != "" && k.Item != "" }

// Keep keeps an answer under name (a request of the item: "caption",
// "summary", "reduce") and reports whether it went to the Redis fallback.
// It is best effort: an answer that can be kept nowhere is logged, and the
// item goes on to write its result.
func (k Keeper) Keep(ctx context.Context, name string, kept Kept) (inRedis bool) {
	if !k.Enabled() {
		return false
	}
	kept.V = 1
	b, err := json.Marshal(kept)
	if err == nil {
		inRedis, err = k.putWork(ctx, workarea.AnswerKey(k.Batch, k.Item, name), name, b, true)
	}
	if err != nil && k.Log != nil {
		k.Log.WarnContext(ctx, "model answer not kept: a failed result write would ask the model again", "answer", name, "error", err.Error())
	}
	return inRedis
}

// Load returns the answer kept under name by an earlier attempt, if any.
func (k Keeper) Load(ctx context.Context, name string) (Kept, bool, error) {
	var kept Kept
	if !k.Enabled() || k.Fresh {
		return kept, false, nil
	}
	b, inRedis, ok, err := k.getWork(ctx, workarea.AnswerKey(k.Batch, k.Item, name), name)
	if err == nil && !ok && k.Stored != nil {
		return k.Stored(ctx, name)
	}
	if err != nil || !ok {
		return kept, false, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // as Ask decodes answers
	if err := dec.Decode(&kept); err != nil || kept.Answer.Doc == nil {
		return Kept{}, false, nil // unreadable: ask again
	}
	kept.InRedis = inRedis
	return kept, true, nil
}

// Drop deletes the answers kept under names, and the item's Redis fallback,
// once the item is recorded.
func (k Keeper) Drop(ctx context.Context, names ...string) error {
	if k.Batch == "" || k.Item == "" {
		return nil
	}
	var err error
	for _, name := range names {
		if k.Out != nil {
			err = errors.Join(err, k.Out.Delete(ctx, workarea.AnswerKey(k.Batch, k.Item, name)))
		}
	}
	if k.Stash != nil {
		err = errors.Join(err, k.Stash.DropKeptAnswers(ctx, k.Batch, k.Item))
	}
	return err
}

// PutWork writes a work object of the item (a kept answer, a map answer)
// to key in Out, trying again as Put does; when Out cannot take it, it is
// kept in the Stash under name instead.
func (k Keeper) PutWork(ctx context.Context, key, name string, b []byte) error {
	_, err := k.putWork(ctx, key, name, b, false)
	return err
}

// putWork writes b to key in Out (volatile: without making it durable),
// else keeps it in the Stash under name.
func (k Keeper) putWork(ctx context.Context, key, name string, b []byte, volatile bool) (inRedis bool, _ error) {
	write := put
	if volatile {
		write = putVolatile
	}
	err := write(ctx, k.Out, key, b, "application/json")
	if err == nil {
		return false, nil
	}
	if k.Stash == nil {
		return false, fmt.Errorf("write %s: %w", key, err)
	}
	if serr := k.Stash.KeepAnswer(ctx, k.Batch, k.Item, name, b); serr != nil {
		return false, errors.Join(fmt.Errorf("write %s: %w", key, err), serr)
	}
	if k.Log != nil {
		k.Log.WarnContext(ctx, "work area not writable: answer kept in Redis", "key", key, "error", err.Error())
	}
	return true, nil
}

// GetWork reads a work object PutWork wrote, from Out or else from the
// Stash. A missing object is (nil, false, nil).
func (k Keeper) GetWork(ctx context.Context, key, name string) ([]byte, bool, error) {
	b, _, ok, err := k.getWork(ctx, key, name)
	return b, ok, err
}

func (k Keeper) getWork(ctx context.Context, key, name string) (b []byte, inRedis, ok bool, _ error) {
	if !k.Enabled() {
		return nil, false, false, nil
	}
	b, err := ReadAll(ctx, k.Out, key)
	if err == nil {
		return b, false, true, nil
	}
	if k.Stash != nil {
		if sb, ok, serr := k.Stash.KeptAnswer(ctx, k.Batch, k.Item, name); serr == nil && ok {
			return sb, true, true, nil
		} else if serr != nil && errors.Is(err, fs.ErrNotExist) {
			return nil, false, false, serr
		}
	}
	if errors.Is(err, fs.ErrNotExist) || storage.IsPermanent(err) {
		// Not there, or never readable: nothing was kept there.
		return nil, false, false, nil
	}
	return nil, false, false, fmt.Errorf("read %s: %w", key, err)
}

// ReadAll reads a whole work object (kept answers, map answers: small
// objects the worker wrote itself) from st.
func ReadAll(ctx context.Context, st storage.Store, key string) ([]byte, error) {
	rc, err := st.Get(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
