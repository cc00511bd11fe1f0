package llm

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestEstimateImageTokens(t *testing.T) {
	one := EstimateImageTokens(336, 336)
	if one != 144+imageOverhead {
		t.Errorf("one tile = %d", one)
	}
	if got := EstimateImageTokens(337, 336); got != 3*144+imageOverhead { // 2 tiles + global
		t.Errorf("two tiles = %d", got)
	}
	if EstimateImageTokens(10000, 10000) != EstimateImageTokens(5000, 5000) {
		t.Error("tile cap not applied")
	}
	if EstimateImageTokens(0, 0) != one {
		t.Error("unknown size should count as one tile")
	}
}

func TestEstimateUsesDecodedSizeAndCompleteUsage(t *testing.T) {
	// A 1x1 GIF without Width/Height: size comes from the data.
	gif := []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")
	req := Request{System: "abcd", Parts: []Part{{Text: strings.Repeat("x", 40)}, {Image: &Image{MIME: "image/gif", Data: gif}}}}
	in, img := EstimateInput(req)
	if img != EstimateImageTokens(1, 1) || in != img+1+10+2*messageOverhead {
		t.Errorf("EstimateInput = %d, %d", in, img)
	}
	u := CompleteUsage(Usage{}, req, "12345678")
	if !u.Estimated || u.OutputTokens != 2 || u.InputTokens != in {
		t.Errorf("estimated usage %+v", u)
	}
	u = CompleteUsage(Usage{InputTokens: 1000, OutputTokens: 3}, req, "x")
	if u.Estimated || u.ImageTokens != img || u.InputTokens != 1000 {
		t.Errorf("completed usage %+v", u)
	}
	u = CompleteUsage(Usage{InputTokens: 50, OutputTokens: 3}, req, "x")
	if u.ImageTokens != 50 {
		t.Errorf("image tokens not capped at input: %+v", u)
	}
}

func TestValidateRequest(t *testing.T) {
	p := Profile{Provider: "x", Model: "m", TextOnly: true, MaxImages: 1, MaxImageBytes: 10, MaxImagePixels: 100, ImageFormats: []string{"image/jpeg"}}
	img := func(n, w, h int, mime string) Part {
		return Part{Image: &Image{MIME: mime, Data: make([]byte, n), Width: w, Height: h}}
	}
	cases := []struct {
		parts []Part
		kind  ErrorKind
	}{
		{[]Part{{Text: "a"}}, 0},
		{[]Part{img(5, 5, 5, "image/jpeg")}, 0},
		{[]Part{img(11, 5, 5, "image/jpeg")}, TooLarge},
		{[]Part{img(5, 20, 20, "image/jpeg")}, TooLarge},
		{[]Part{img(5, 5, 5, "image/png")}, Permanent},
		{[]Part{img(5, 5, 5, "image/jpeg"), img(5, 5, 5, "image/jpeg")}, Permanent},
		{[]Part{img(0, 5, 5, "image/jpeg")}, Permanent},
	}
	for i, c := range cases {
		if got := KindOf(ValidateRequest(p, Request{Parts: c.parts})); got != c.kind {
			t.Errorf("case %d: kind %v, want %v", i, got, c.kind)
		}
	}
	p.TextOnly = false
	if KindOf(ValidateRequest(p, Request{Parts: []Part{{Text: "a"}}})) != Permanent {
		t.Error("text-only request accepted by an image-only model")
	}
	if CheckRequestAllowed(p, true) != nil {
		t.Error("request with image refused")
	}
}

func TestOutputTokens(t *testing.T) {
	p := Profile{MaxOutputTokens: 100}
	for _, c := range [][2]int{{0, 100}, {50, 50}, {500, 100}} {
		if got := OutputTokens(p, Request{MaxOutputTokens: c[0]}); got != c[1] {
			t.Errorf("OutputTokens(%d) = %d, want %d", c[0], got, c[1])
		}
	}
}

func TestExtractJSONAnswer(t *testing.T) {
	req := Request{Schema: &Schema{Name: "s", JSON: json.RawMessage(`{"type":"object"}`)}}
	resp := Response{Text: "```json\n{\"a\": 1,}\n```"}
	if err := ExtractJSONAnswer("p", req, &resp); err != nil || resp.Text != `{"a":1}` {
		t.Errorf("got %q, %v", resp.Text, err)
	}
	resp = Response{Text: "secret contract text", FinishReason: "length"}
	err := ExtractJSONAnswer("p", req, &resp)
	if KindOf(err) != Permanent || !errors.Is(err, ErrInvalidJSON) || strings.Contains(err.Error(), "secret contract") {
		t.Errorf("err %v", err)
	}
	resp = Response{Text: "plain"}
	if err := ExtractJSONAnswer("p", Request{}, &resp); err != nil || resp.Text != "plain" {
		t.Error("answer without schema changed")
	}
	if !strings.Contains(WithInstruction("sys", req.Schema), `{"type":"object"}`) || WithInstruction("sys", nil) != "sys" {
		t.Error("WithInstruction")
	}
}
