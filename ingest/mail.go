package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/mailparts"
)

// Email attachments are split out here, at ingest, so that the batch's
// total is known when it is sealed and every attachment is an item of its
// own (in the manifest exactly once, with its message as parent). Their
// bytes stay in the message: an attachment's Ref is the message's object
// with a part path (Ref.Part), and the worker re-reads the part from the
// message (jobs/mailparts.Open). Nothing is copied to a work area, and
// payloads hold only the reference.

// inlineImageMin: an inline image smaller than this (a logo, a signature
// icon) is skipped rather than captioned.
const inlineImageMin = 10 << 10

// isMail reports whether item it (as classify left it) is an email whose
// attachments are to be listed: a message to process, or an unchanged
// one (its attachments may have their own state).
func isMail(it Item, c candidate) bool {
	if it.Unchanged {
		return strings.EqualFold(path.Ext(c.info.Key), ".eml")
	}
	return it.Skip == "" && it.Type == jobs.FileEML
}

// classifyExpanded classifies c; an email (isMail) is followed by the
// items of its attachments, the message first.
func (in *Ingester) classifyExpanded(ctx context.Context, pr *prepared, c candidate) []Item {
	it := in.classify(ctx, pr, c)
	if !isMail(it, c) {
		return []Item{it}
	}
	parts := in.attachments(ctx, pr, c, &it) // may fail the message itself
	return append([]Item{it}, parts...)
}

// attachments reads message msg whole and lists its attachments (nested
// messages' included) as items. A message over the MIME budgets (a bomb
// of nested parts) is failed here with the reason, and lists nothing; a
// message that cannot be read lists nothing (its own item fails in the
// worker with the reason).
func (in *Ingester) attachments(ctx context.Context, pr *prepared, c candidate, msg *Item) []Item {
	rc, err := c.src.store.Get(ctx, c.info.Key, nil)
	if err != nil {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(rc, pr.o.MaxSize+1))
	rc.Close()
	if err != nil || int64(len(data)) > pr.o.MaxSize {
		return nil
	}
	m, err := mailparts.Read(data, mailparts.Limits{})
	if errors.Is(err, mailparts.ErrBomb) {
		msg.Failed, msg.Skip, msg.Unchanged = true, "email refused: "+err.Error(), false
		return nil
	}
	if err != nil {
		return nil
	}
	var items []Item
	for _, p := range m.Parts {
		items = append(items, pr.attachmentItem(c, msg.Ref, msg.ResultBase+".parts/"+p.Path+"-"+p.Name, p))
	}
	return items
}

// retriedAttachment is the item of attachment c.part of message c (a
// retry of a failed attachment), read from the message again.
func (in *Ingester) retriedAttachment(ctx context.Context, pr *prepared, c candidate, msg Item) Item {
	fail := func(reason string) Item {
		msg.ID, msg.Ref.Part, msg.Failed, msg.Skip = jobs.ItemID(c.src.url, c.info.Key+"#part="+c.part), c.part, true, reason
		return msg
	}
	data, err := readAll(ctx, c, pr.o.MaxSize)
	if err != nil {
		return fail("email attachment: " + err.Error())
	}
	m, err := mailparts.Read(data, mailparts.Limits{})
	if err != nil {
		return fail("email refused: " + err.Error())
	}
	for _, p := range m.Parts {
		if p.Path == c.part {
			return pr.attachmentItem(c, msg.Ref, msg.ResultBase, p)
		}
	}
	return fail(fmt.Sprintf("the message has no attachment %s any more", c.part))
}

func readAll(ctx context.Context, c candidate, limit int64) ([]byte, error) {
	rc, err := c.src.store.Get(ctx, c.info.Key, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("over the %d-byte limit (--max-size)", limit)
	}
	return data, nil
}

// attachmentItem is the item of attachment p of the message msg, its
// results named from resultBase.
func (pr *prepared) attachmentItem(c candidate, msg jobs.Ref, resultBase string, p mailparts.Part) Item {
	parent := jobs.Ref{Location: msg.Location, Key: msg.Key}.URL()
	if p.Parent != "" {
		parent = jobs.Ref{Location: msg.Location, Key: msg.Key, Part: p.Parent}.URL()
	}
	it := Item{
		ID:         jobs.ItemID(c.src.url, c.info.Key+"#part="+p.Path),
		Ref:        jobs.Ref{Location: c.src.url, Key: c.info.Key, ETag: c.info.ETag, Size: p.Size, Part: p.Path},
		Store:      c.src.store,
		Kind:       jobs.KindOther,
		ResultBase: resultBase,
		Parent:     parent,
		Head:       p.Head,
	}
	{
		switch {
		case pr.unchanged(&it):
			it.Skip = unchangedReason
		case p.TooLarge:
			it.Failed = true
			it.Skip = fmt.Sprintf("attachment %q is over the %d-byte limit decoded: refused", p.Name, mailparts.DefaultMaxPartBytes)
		case p.Size == 0:
			it.Skip = fmt.Sprintf("attachment %q is empty (0 bytes)", p.Name)
		case p.Size > pr.o.MaxSize:
			it.Skip = fmt.Sprintf("attachment %q is too large: %d bytes is over the %d-byte limit (--max-size)", p.Name, p.Size, pr.o.MaxSize)
		case p.Inline && strings.HasPrefix(p.ContentType, "image/") && p.Size < inlineImageMin:
			it.Kind = jobs.KindImage
			it.Skip = fmt.Sprintf("inline image %q under %d KB in the message body (a logo or signature): not captioned", p.Name, inlineImageMin>>10)
		default:
			it = pr.decide(it, p.Name)
		}
	}
	return it
}
