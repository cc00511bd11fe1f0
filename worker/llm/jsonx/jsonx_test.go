package jsonx

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestExtract(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // JSON to compare semantically; "" means ErrNoJSON
	}{
		{"plain", `{"a":1}`, `{"a":1}`},
		{"prose around", "Sure! Here it is: {\"title\": \"Lamp\", \"tags\": [\"a\"]} Hope it helps.", `{"title":"Lamp","tags":["a"]}`},
		{"json fence", "Answer:\n```json\n{\"a\": {\"b\": [1, 2]}}\n```\nDone {not json}", `{"a":{"b":[1,2]}}`},
		{"bare fence", "```\n{\"x\": true}\n```", `{"x":true}`},
		{"unterminated fence", "```json\n{\"x\": null}\n", `{"x":null}`},
		{"trailing commas", "{\"a\": [1, 2, ], \"b\": {\"c\": 3,},\n}", `{"a":[1,2],"b":{"c":3}}`},
		{"braces in strings", `{"s": "a } b { c", "t": "q\"}"}`, `{"s":"a } b { c","t":"q\"}"}`},
		{"comma inside string kept", `{"s": "x, }", "n": 1,}`, `{"s":"x, }","n":1}`},
		{"skips invalid first object", "{oops} then {\"ok\": 1}", `{"ok":1}`},
		{"nested first", "{\"outer\": {\"inner\": 1}}", `{"outer":{"inner":1}}`},
		{"unicode", "Ответ: {\"заголовок\": \"Лампа\"}", `{"заголовок":"Лампа"}`},
		{"bom", "\ufeff{\"a\":1}", `{"a":1}`},
		{"no object", "no json here", ""},
		{"array only", "[1,2,3]", ""},
		{"truncated answer gives no fragment", "{\"a\": {\"b\": 1}", ""},
		{"stray closer then object", "] } {\"a\": 2}", `{"a":2}`},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Extract(tt.in)
			if tt.want == "" {
				if !errors.Is(err, ErrNoJSON) {
					t.Fatalf("Extract(%q) = %s, %v; want ErrNoJSON", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Extract(%q): %v", tt.in, err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("result %s is not JSON: %v", got, err)
			}
			_ = json.Unmarshal([]byte(tt.want), &w)
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("Extract(%q) = %s; want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestExtractGivesUpAfterCandidateBound(t *testing.T) {
	// Many balanced but invalid objects before the real one: the search
	// stops after maxCandidates tries instead of scanning on.
	in := strings.Repeat("{x} ", maxCandidates) + `{"a":1}`
	if got, err := Extract(in); !errors.Is(err, ErrNoJSON) {
		t.Fatalf("Extract past %d candidates = %s, %v; want ErrNoJSON", maxCandidates, got, err)
	}
	in = strings.Repeat("{x} ", maxCandidates-1) + `{"a":1}`
	if got, err := Extract(in); err != nil || string(got) != `{"a":1}` {
		t.Fatalf("Extract within bound = %s, %v", got, err)
	}
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, "```json\n{\"a\":[1,2,],}\n```", `x {"s":"}\"{"} y`, `{{{`, `}{`, `{"a":"\`, "",
		"Here: {\"caption\": \"Red mug\", \"tags\": [\"mug\", \"red\",],}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Extract(s)
		if err != nil {
			if !errors.Is(err, ErrNoJSON) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if !json.Valid(got) {
			t.Fatalf("Extract(%q) returned invalid JSON %q", s, got)
		}
		var obj map[string]any
		if err := json.Unmarshal(got, &obj); err != nil {
			t.Fatalf("Extract(%q) returned a non-object %q", s, got)
		}
		// A valid object in plain prose (no fences, no other braces) must be
		// found unchanged.
		if !strings.ContainsAny(s, "{}`\"") {
			wrapped := s + ` {"k":"v"} ` + s
			got2, err := Extract(wrapped)
			if err != nil || string(got2) != `{"k":"v"}` {
				t.Fatalf("Extract(%q) = %q, %v", wrapped, got2, err)
			}
		}
	})
}

func BenchmarkExtract(b *testing.B) {
	answer := "Here is the digest you asked for:\n```json\n{\"title\": \"Lease\", \"parties\": [" +
		strings.Repeat(`{"name": "Party, Inc.", "role": "tenant"},`, 20) + "], \"summary\": \"" + strings.Repeat("text ", 400) + "\",}\n```\nLet me know."
	b.SetBytes(int64(len(answer)))
	for b.Loop() {
		if _, err := Extract(answer); err != nil {
			b.Fatal(err)
		}
	}
}
