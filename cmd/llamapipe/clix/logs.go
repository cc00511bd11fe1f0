package clix

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/term"
)

// NewLogger builds the process logger on stderr: format auto (text on a
// terminal, JSON otherwise), text or json; level debug, info, warn or error
// ("" is def). A bad value is a *UsageError naming the flag.
func NewLogger(stderr io.Writer, format, level string, def slog.Level) (*slog.Logger, error) {
	lv := def
	if level != "" {
		if err := lv.UnmarshalText([]byte(level)); err != nil {
			return nil, &UsageError{Msg: fmt.Sprintf("--log-level: %v", err)}
		}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch {
	case format == "json" || ((format == "auto" || format == "") && !isTerminal(stderr)):
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	case format == "text" || format == "auto" || format == "":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	}
	return nil, &UsageError{Msg: fmt.Sprintf("--log-format %q: use auto, text or json", format)}
}

// SayError writes the error that ends the process: a JSON record when the
// logs on stderr are JSON (format json, or auto off a terminal), else a
// "llamapipe: " line.
func SayError(stderr io.Writer, format, msg string) {
	if format == "json" || ((format == "auto" || format == "") && !isTerminal(stderr)) {
		slog.New(slog.NewJSONHandler(stderr, nil)).Error(msg)
		return
	}
	fmt.Fprintln(stderr, "llamapipe:", msg)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// ReadSecretMap reads a JSON object of strings (e.g. PDF passwords) from a
// file, never echoing its content in errors; null values are left out.
func ReadSecretMap(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	raw := map[string]*string{}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object of strings (content not shown)", path)
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		if v != nil { // null: password unknown
			m[k] = *v
		}
	}
	return m, nil
}
