package schedule

import "fmt"

// ConfigError is a bad schedules file or watch setting: the caller's input
// is wrong, no service failed. The CLI reports it as a usage error.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

func configErrorf(format string, args ...any) error {
	return &ConfigError{Msg: fmt.Sprintf(format, args...)}
}
