package iox

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestExact(t *testing.T) {
	for _, tc := range []struct {
		body    string
		size    int64
		wantErr bool
	}{
		{"hello", 5, false},
		{"hello", -1, false},
		{"", 0, false},
		{"hell", 5, true},
		{"hello!", 5, true},
		{"x", 0, true},
	} {
		// OneByteReader exercises the boundary checks one Read at a time.
		for _, r := range []io.Reader{strings.NewReader(tc.body), iotest.OneByteReader(strings.NewReader(tc.body))} {
			got, err := io.ReadAll(Exact(r, tc.size))
			if tc.wantErr {
				if !errors.Is(err, ErrSizeMismatch) {
					t.Errorf("Exact(%q, %d): err = %v, want ErrSizeMismatch", tc.body, tc.size, err)
				}
				continue
			}
			if err != nil || string(got) != tc.body {
				t.Errorf("Exact(%q, %d) = %q, %v", tc.body, tc.size, got, err)
			}
		}
	}
	// Errors of the source pass through.
	boom := errors.New("boom")
	if _, err := io.ReadAll(Exact(iotest.ErrReader(boom), 3)); !errors.Is(err, boom) {
		t.Errorf("source error = %v, want boom", err)
	}
}

func TestWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	r := WithContext(ctx, strings.NewReader("abcdef"))
	buf := make([]byte, 2)
	if n, err := r.Read(buf); n != 2 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	cancel()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel = %d, %v; want 0, context.Canceled", n, err)
	}
}
