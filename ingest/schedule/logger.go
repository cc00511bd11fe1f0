package schedule

import (
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"
)

// asynqLogger adapts slog to asynq's five-method Logger.
type asynqLogger struct{ l *slog.Logger }

var _ asynq.Logger = asynqLogger{}

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
