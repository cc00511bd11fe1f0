package ui

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
)

// Say tells the person at a terminal (stderr) msg; when stderr is not a
// terminal it is a log record msg with args instead (log nil: dropped), so
// that JSON logs on stderr never get plain lines mixed in.
func Say(ctx context.Context, stderr io.Writer, log *slog.Logger, msg string, args ...any) {
	if IsTerminal(stderr) {
		_, _ = io.WriteString(stderr, "llamapipe: "+strings.TrimSuffix(msg, "\n")+"\n")
		return
	}
	if log != nil {
		log.InfoContext(ctx, msg, args...)
	}
}

// LogWriter turns each line written to it into a log record at level
// (without a leading "llamapipe: "), with args. Follow writes through it
// when stderr is not a terminal.
func LogWriter(ctx context.Context, log *slog.Logger, level slog.Level, args ...any) io.Writer {
	if log == nil {
		return io.Discard
	}
	return &logWriter{ctx: ctx, log: log, level: level, args: args}
}

type logWriter struct {
	ctx   context.Context
	log   *slog.Logger
	level slog.Level
	args  []any
	buf   []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := strings.TrimSpace(strings.TrimPrefix(string(w.buf[:i]), "llamapipe: "))
		w.buf = w.buf[i+1:]
		if line != "" {
			w.log.Log(w.ctx, w.level, line, w.args...)
		}
	}
}
