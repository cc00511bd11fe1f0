package batchapi

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/worker/llm"
)

// sizedEncode encodes a line as {"id":…,"t":<text>}: its size follows the
// text's length.
func sizedEncode(l Line) ([]byte, error) {
	if len(l.Req.Parts) == 0 {
		return nil, &llm.Error{Provider: "test", Kind: llm.Permanent, Message: "no parts"}
	}
	return fmt.Appendf(nil, `{"id":%q,"t":%q}`, l.CustomID, l.Req.Parts[0].Text), nil
}

func textLine(id string, n int) Line {
	return Line{CustomID: id, Req: llm.Request{Parts: []llm.Part{{Text: strings.Repeat("x", n)}}}}
}

// pack adds every line and returns the cut files (the last by Flush).
func pack(t *testing.T, p *Packer, lines []Line) []*File {
	t.Helper()
	var files []*File
	for _, l := range lines {
		f, err := p.Add(l)
		if err != nil {
			t.Fatalf("add %s: %v", l.CustomID, err)
		}
		if f != nil {
			files = append(files, f)
		}
	}
	if f := p.Flush(); f != nil {
		files = append(files, f)
	}
	if p.Pending() != 0 || p.Flush() != nil {
		t.Fatal("packer not empty after Flush")
	}
	return files
}

// checkFiles: the files hold every line once, in order, each file within
// the limits, each line its encoding followed by a newline.
func checkFiles(t *testing.T, files []*File, lines []Line, lim Limits) {
	t.Helper()
	var all []string
	for i, f := range files {
		if lim.MaxLines > 0 && f.Lines() > lim.MaxLines {
			t.Errorf("file %d: %d lines, limit %d", i, f.Lines(), lim.MaxLines)
		}
		if lim.MaxBytes > 0 && int64(len(f.Data)) > lim.MaxBytes {
			t.Errorf("file %d: %d bytes, limit %d", i, len(f.Data), lim.MaxBytes)
		}
		raw := bytes.Split(bytes.TrimSuffix(f.Data, []byte("\n")), []byte("\n"))
		if len(raw) != f.Lines() {
			t.Fatalf("file %d: %d lines of data, %d custom ids", i, len(raw), f.Lines())
		}
		for j, id := range f.CustomIDs {
			want, _ := sizedEncode(lines[len(all)+j])
			if !bytes.Equal(raw[j], want) || lines[len(all)+j].CustomID != id {
				t.Fatalf("file %d line %d: %s (%s)", i, j, raw[j], id)
			}
		}
		all = append(all, f.CustomIDs...)
	}
	if len(all) != len(lines) {
		t.Fatalf("%d lines packed, %d added", len(all), len(lines))
	}
}

func TestPackerCutsAtLineCount(t *testing.T) {
	lim := Limits{MaxLines: 4}
	var lines []Line
	for i := range 10 {
		lines = append(lines, textLine(fmt.Sprintf("l%d", i), 10))
	}
	files := pack(t, NewPacker(sizedEncode, lim), lines)
	if len(files) != 3 || files[0].Lines() != 4 || files[1].Lines() != 4 || files[2].Lines() != 2 {
		t.Fatalf("files of %v lines", lineCounts(files))
	}
	checkFiles(t, files, lines, lim)
}

func lineCounts(files []*File) []int {
	var n []int
	for _, f := range files {
		n = append(n, f.Lines())
	}
	return n
}

func TestPackerCutsAtBytes(t *testing.T) {
	one, _ := sizedEncode(textLine("l00", 30))
	per := int64(len(one)) + 1 // with its newline
	// Room for exactly three lines: the fourth starts a new file.
	lim := Limits{MaxBytes: 3*per + per/2}
	var lines []Line
	for i := range 8 {
		lines = append(lines, textLine(fmt.Sprintf("l%02d", i), 30))
	}
	files := pack(t, NewPacker(sizedEncode, lim), lines)
	if got := lineCounts(files); len(got) != 3 || got[0] != 3 || got[1] != 3 || got[2] != 2 {
		t.Fatalf("files of %v lines", got)
	}
	checkFiles(t, files, lines, lim)
	// A file exactly at the limit is allowed.
	lim = Limits{MaxBytes: 3 * per}
	files = pack(t, NewPacker(sizedEncode, lim), lines[:3])
	if len(files) != 1 || int64(len(files[0].Data)) != 3*per {
		t.Fatalf("exact fit: %v", lineCounts(files))
	}
}

func TestPackerRejectsOversizedLineByName(t *testing.T) {
	lim := Limits{MaxBytes: 1000, MaxLineBytes: 100}
	p := NewPacker(sizedEncode, lim)
	if _, err := p.Add(textLine("small-1", 10)); err != nil {
		t.Fatal(err)
	}
	_, err := p.Add(textLine("huge-item-7", 200))
	var tl *LineTooLargeError
	if !errors.As(err, &tl) || tl.CustomID != "huge-item-7" || tl.Limit != 100 || tl.Size <= 100 {
		t.Fatalf("oversized line: %v", err)
	}
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "huge-item-7") {
		t.Errorf("error %q is not permanent or does not name the line", err)
	}
	// The packer is unchanged and goes on.
	if _, err := p.Add(textLine("small-2", 10)); err != nil {
		t.Fatal(err)
	}
	f := p.Flush()
	if f.Lines() != 2 || f.CustomIDs[0] != "small-1" || f.CustomIDs[1] != "small-2" {
		t.Fatalf("after rejection: %v", f.CustomIDs)
	}
	// Without MaxLineBytes, a line must still fit a file.
	p = NewPacker(sizedEncode, Limits{MaxBytes: 50})
	if _, err := p.Add(textLine("big", 60)); !errors.As(err, &tl) || tl.Limit != 49 {
		t.Fatalf("line over the file size: %v", err)
	}
}

func TestPackerRefusesDuplicatesAndInvalidRequests(t *testing.T) {
	p := NewPacker(sizedEncode, OpenAILimits())
	if _, err := p.Add(textLine("a", 1)); err != nil {
		t.Fatal(err)
	}
	p.Flush()
	// A custom id stays taken across cuts.
	var dup *DuplicateIDError
	if _, err := p.Add(textLine("a", 1)); !errors.As(err, &dup) || !errors.Is(err, ErrPermanent) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := p.Add(Line{CustomID: "empty"}); llm.KindOf(err) != llm.Permanent || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("invalid request: %v", err)
	}
	if p.Pending() != 0 {
		t.Fatalf("%d pending after refusals", p.Pending())
	}
}

func TestProfileLimitsAndPurpose(t *testing.T) {
	b := llm.Builtins()
	if got := ProfileLimits(b["bedrock-scout"]); got != BedrockLimits() {
		t.Errorf("bedrock: %+v", got)
	}
	if got := ProfileLimits(b["groq"]); got.MaxBytes != SmallMaxBytes || got.MaxLines != OpenAIMaxLines {
		t.Errorf("groq: %+v", got)
	}
	generic := llm.Profile{Provider: llm.ProviderOpenAI, BaseURL: "https://llm.example.com/v1", BatchAPI: llm.BatchOpenAI}
	if got := ProfileLimits(generic); got != OpenAILimits() {
		t.Errorf("generic: %+v", got)
	}
	if ProfileFilePurpose(b["together-maverick"]) != "batch-api" || ProfileFilePurpose(b["groq"]) != "batch" {
		t.Error("file purposes")
	}
	// Every preset priced for batch names its batch API, and the reverse.
	for name, p := range b {
		if (p.Prices.BatchDiscount > 0) != (p.BatchAPI != "") {
			t.Errorf("%s: batch discount %v, batch API %q", name, p.Prices.BatchDiscount, p.BatchAPI)
		}
	}
}

func TestProfilesYAMLBatchAPI(t *testing.T) {
	for yaml, ok := range map[string]bool{
		"profiles:\n  mine:\n    preset: vllm\n    model: m\n    batch_api: openai\n":    true,
		"profiles:\n  mine:\n    preset: vllm\n    model: m\n    batch_api: sagemaker\n": false,
		"profiles:\n  bedrock-scout:\n    batch_api: openai\n":                           false,
	} {
		path := t.TempDir() + "/p.yaml"
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		ps, err := llm.LoadProfiles(path)
		if (err == nil) != ok {
			t.Errorf("%q: %v", yaml, err)
		}
		if ok && ps["mine"].BatchAPI != llm.BatchOpenAI {
			t.Errorf("%q: batch API %q", yaml, ps["mine"].BatchAPI)
		}
	}
}
