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
// model's answer as soon as it is in, and an attempt that finds a kept
// answer only writes the result. The answer is kept in Redis (Stash, with
// a TTL): one command, where a file in the batch's work area
// (workarea.AnswerKey) cost a file creation and a deletion per item, 10–17% of
// a short item's CPU on a local folder (issue 16). An
// answer over maxRedisAnswer, or one Redis refuses, goes to the work area
// instead (storage.PutVolatile: on a local folder, no sync); one neither
// can take is not kept. The worker drops kept answers once it records the
// item: the Redis copy always, the work-area file only where one may have
// been written (Kept.InWorkArea, Outcome.KeptInWorkArea).
//
// A kept answer lives only until the result is stored, so it is not made
// durable: a crash of the worker does not lose it; a Redis failover
// (replication is asynchronous), a Redis restart without persistence, or a
// power loss that takes a work-area file may. Then a retry that finds no
// kept answer looks for the result an earlier attempt stored
// (Keeper.Stored, StoredAnswer): a stored result is the answer, and the
// model is not asked again; only where no result was stored either is the
// model asked again.

// maxRedisAnswer is the largest kept answer (its JSON) Keep puts in Redis:
// a larger one goes to the work area, so that an answer in Redis (about
// one per task in flight) is never over 256 KB. Answers are bounded by the
// model's output limit (4,096–8,192 tokens, some tens of KB, for most
// presets); only an output limit raised far above that reaches this.
const maxRedisAnswer = 256 << 10

// Stash keeps an item's answers in Redis (*jobs.Tracker has these
// methods): the kept answers, and a map answer the work area cannot take.
type Stash interface {
	KeepAnswer(ctx context.Context, batch, item, name string, answer []byte) error
	KeptAnswer(ctx context.Context, batch, item, name string) ([]byte, bool, error)
	DropKeptAnswers(ctx context.Context, batch, item string) error
}

// Keeper keeps one item's model answers until its results are stored. The
// zero Keeper keeps nothing (Load finds nothing).
type Keeper struct {
	// Out is the item's output store; answers Redis cannot keep go to its
	// work area.
	Out storage.Store
	// Stash is Redis, where answers are kept first. Nil: none (answers go
	// to the work area).
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
	// stored (see StoredAnswer), whose kept answer a failover or a power
	// loss took.
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
	// InWorkArea: the answer was loaded from the work area (a file Drop
	// deletes), not from Redis.
	InWorkArea bool `json:"-"`
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
// "summary", "reduce"): in Redis, else in the work area. It reports
// whether the work area was tried (a file may be there for Drop). It is
// best effort: an answer that can be kept nowhere is logged, and the item
// goes on to write its result.
func (k Keeper) Keep(ctx context.Context, name string, kept Kept) (inWorkArea bool) {
	if !k.Enabled() {
		return false
	}
	kept.V = 1
	b, err := json.Marshal(kept)
	if err != nil {
		k.notKept(ctx, name, err)
		return false
	}
	var rerr error
	if k.Stash != nil && len(b) <= maxRedisAnswer {
		if rerr = k.Stash.KeepAnswer(ctx, k.Batch, k.Item, name, b); rerr == nil {
			return false
		}
	}
	key := workarea.AnswerKey(k.Batch, k.Item, name)
	err = putVolatile(ctx, k.Out, key, b, "application/json")
	switch {
	case err == nil && rerr != nil && k.Log != nil:
		k.Log.WarnContext(ctx, "Redis refused the answer: kept in the work area", "answer", name, "error", rerr.Error())
	case err != nil && k.Stash != nil && len(b) > maxRedisAnswer:
		// Too large for Redis, but the work area cannot take it either:
		// Redis, rather than a second payment.
		if serr := k.Stash.KeepAnswer(ctx, k.Batch, k.Item, name, b); serr != nil {
			err = errors.Join(fmt.Errorf("write %s: %w", key, err), serr)
		} else {
			err = nil
		}
	case err != nil:
		err = errors.Join(rerr, fmt.Errorf("write %s: %w", key, err))
	}
	if err != nil {
		k.notKept(ctx, name, err)
	}
	return true
}

func (k Keeper) notKept(ctx context.Context, name string, err error) {
	if k.Log != nil {
		k.Log.WarnContext(ctx, "model answer not kept: a failed result write would ask the model again", "answer", name, "error", err.Error())
	}
}

// Load returns the answer kept under name by an earlier attempt, if any:
// from Redis, else from the work area, else (Stored) from the result an
// earlier attempt stored. A Redis that cannot be read, with nothing in the
// work area, is an error (the task is retried; the model is not asked
// while the answer may be kept).
func (k Keeper) Load(ctx context.Context, name string) (Kept, bool, error) {
	var kept Kept
	if !k.Enabled() || k.Fresh {
		return kept, false, nil
	}
	var b []byte
	var rerr error
	if k.Stash != nil {
		var ok bool
		if b, ok, rerr = k.Stash.KeptAnswer(ctx, k.Batch, k.Item, name); !ok {
			b = nil
		}
	}
	inWorkArea := false
	if b == nil {
		key := workarea.AnswerKey(k.Batch, k.Item, name)
		wb, err := ReadAll(ctx, k.Out, key)
		switch {
		case err == nil:
			b, inWorkArea = wb, true
		case errors.Is(err, fs.ErrNotExist) || storage.IsPermanent(err):
			// Not there, or never readable: nothing was kept there.
		default:
			return kept, false, fmt.Errorf("read %s: %w", key, err)
		}
	}
	switch {
	case b == nil && rerr != nil:
		return kept, false, rerr
	case b == nil && k.Stored != nil:
		return k.Stored(ctx, name)
	case b == nil:
		return kept, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // as Ask decodes answers
	if err := dec.Decode(&kept); err != nil || kept.Answer.Doc == nil {
		return Kept{}, false, nil // unreadable: ask again
	}
	kept.InWorkArea = inWorkArea
	return kept, true, nil
}

// Drop deletes the item's kept answers once it is recorded: the Redis copy
// (one command for all of them) and the work-area files of names — only
// those that may have one (Outcome.KeptInWorkArea): none on the common
// path, where no file was created.
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

// PutWork writes a work object of the item (a map answer) to key in Out,
// trying again as Put does; when Out cannot take it, it is kept in the
// Stash under name instead.
func (k Keeper) PutWork(ctx context.Context, key, name string, b []byte) error {
	err := put(ctx, k.Out, key, b, "application/json")
	if err == nil {
		return nil
	}
	if k.Stash == nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if serr := k.Stash.KeepAnswer(ctx, k.Batch, k.Item, name, b); serr != nil {
		return errors.Join(fmt.Errorf("write %s: %w", key, err), serr)
	}
	if k.Log != nil {
		k.Log.WarnContext(ctx, "work area not writable: answer kept in Redis", "key", key, "error", err.Error())
	}
	return nil
}

// GetWork reads a work object PutWork wrote, from Out or else from the
// Stash. A missing object is (nil, false, nil).
func (k Keeper) GetWork(ctx context.Context, key, name string) ([]byte, bool, error) {
	if !k.Enabled() {
		return nil, false, nil
	}
	b, err := ReadAll(ctx, k.Out, key)
	if err == nil {
		return b, true, nil
	}
	if k.Stash != nil {
		if sb, ok, serr := k.Stash.KeptAnswer(ctx, k.Batch, k.Item, name); serr == nil && ok {
			return sb, true, nil
		} else if serr != nil && errors.Is(err, fs.ErrNotExist) {
			return nil, false, serr
		}
	}
	if errors.Is(err, fs.ErrNotExist) || storage.IsPermanent(err) {
		// Not there, or never readable: nothing was kept there.
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("read %s: %w", key, err)
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
