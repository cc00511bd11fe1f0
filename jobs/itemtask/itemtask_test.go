package itemtask_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/itemtask"
)

func batch() jobs.Batch {
	return jobs.Batch{ID: "20261125-101500-3f9a1c", Spec: jobs.Spec{
		Sources: []string{"s3://cat/a", "s3://cat/b"}, Out: "s3://cat/out", Task: jobs.TaskAuto,
		Options: jobs.Options{Language: "de", Products: "s3://cat/p.csv"}}}
}

func item(b jobs.Batch, loc, key, rb string) jobs.ItemPayload {
	return jobs.ItemPayload{V: jobs.PayloadVersion, Batch: b.ID, Item: jobs.ItemID(loc, key),
		Source: jobs.Ref{Location: loc, Key: key, ETag: `"abc"`, Size: 42}, Type: "jpeg", Kind: jobs.KindImage,
		Task: jobs.TaskCaption, Out: b.Out, ResultBase: rb, Options: b.Options, Fingerprint: "ff00"}
}

func TestRoundTrip(t *testing.T) {
	b := batch()
	pdf := item(b, "s3://cat/a", "x/y.pdf", "1-a/x/y.pdf")
	pdf.Type, pdf.Kind, pdf.Task = "pdf", jobs.KindDocument, jobs.TaskSummarize
	pdf.Source.Pages = &jobs.PageRange{First: 2, Last: 5}
	cases := map[string]jobs.ItemPayload{
		"second source":          item(b, "s3://cat/b", "p/IMG_1.jpg", "2-b/p/IMG_1.jpg"),
		"document with pages":    pdf,
		"location not a source":  item(b, "s3://elsewhere/z", "k.jpg", "k.jpg"),
		"result base of a retry": item(b, "s3://cat/a", "k.jpg", "kept/from/before.jpg"),
		"differs from the record": func() jobs.ItemPayload {
			p := item(b, "s3://cat/a", "k.jpg", "1-a/k.jpg")
			p.Out = "s3://other"
			return p
		}(),
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			data, err := itemtask.Encode(b, p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := itemtask.Decode(data, func(id string) (jobs.Batch, error) {
				if id != b.ID {
					t.Fatalf("asked for batch %q", id)
				}
				return b, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, p) {
				t.Fatalf("round trip:\n got %+v\nwant %+v\npayload %s", got, p, data)
			}
			if id, err := itemtask.BatchOf(data); err != nil || id != b.ID {
				t.Fatalf("BatchOf = %q, %v", id, err)
			}
		})
	}
}

// A payload that can be told from its batch leaves out what the batch
// record holds; one of an old build (version 1) still decodes.
func TestCompactAndOld(t *testing.T) {
	b := batch()
	p := item(b, "s3://cat/a", "products/000001/IMG_000001.jpg", "1-a/products/000001/IMG_000001.jpg")
	data, err := itemtask.Encode(b, p)
	if err != nil {
		t.Fatal(err)
	}
	old, err := jobs.NewItemTask(p, jobs.QueueDefault, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) >= len(old.Payload())/2 {
		t.Fatalf("compact payload %d bytes, version 1 %d: %s", len(data), len(old.Payload()), data)
	}
	got, err := itemtask.Decode(old.Payload(), func(string) (jobs.Batch, error) {
		t.Fatal("a version 1 payload needs no batch record")
		return b, nil
	})
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("version 1: %+v, %v", got, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	b := batch()
	lookup := func(string) (jobs.Batch, error) { return b, nil }
	for _, bad := range []string{`{"v":2}`, `{"v":2,"b":"x","k":"a.jpg","t":"jpeg","s":7}`, `{"v":2,"b":"x","k":"a.bin","t":"bin"}`,
		`{"v":2,"b":"x","t":"jpeg"}`, `{"v":3,"batch":"x"}`, `not json`} {
		if _, err := itemtask.Decode([]byte(bad), lookup); !errors.Is(err, jobs.ErrBadPayload) {
			t.Errorf("%s: err = %v, want ErrBadPayload", bad, err)
		}
	}
	gone := errors.New("no record")
	_, err := itemtask.Decode([]byte(`{"v":2,"b":"x","k":"a.jpg","t":"jpeg"}`), func(string) (jobs.Batch, error) { return b, gone })
	if !errors.Is(err, gone) {
		t.Fatalf("err = %v, want the lookup's", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":2,"b":"x","k":"a.jpg","t":"jpeg","s":1}`))
	b := batch()
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = itemtask.Decode(data, func(string) (jobs.Batch, error) { return b, nil })
	})
}
