package schedule

import (
	"log/slog"

	"github.com/hibiken/asynq"
)

// FileProvider is an asynq.PeriodicTaskConfigProvider that re-reads the
// schedules file at each sync, so edits apply without a restart; a broken
// edit keeps the last good schedules.
type FileProvider struct {
	// Path is the schedules file. Required.
	Path string
	// Logger reports a broken edit. Required.
	Logger *slog.Logger
	// OnWatches, when set, is told the watch entries of each good read.
	OnWatches func([]Watch)

	last []*asynq.PeriodicTaskConfig
}

var _ asynq.PeriodicTaskConfigProvider = (*FileProvider)(nil)

// GetConfigs reads the file; asynq calls it at every sync.
func (p *FileProvider) GetConfigs() ([]*asynq.PeriodicTaskConfig, error) {
	s, err := Parse(p.Path)
	if err != nil {
		if p.last != nil {
			p.Logger.Error("schedules file is broken: keeping the last good schedules", "error", err.Error())
			return p.last, nil
		}
		return nil, err
	}
	p.last = s.Periodic
	if p.OnWatches != nil {
		p.OnWatches(s.Watches)
	}
	return s.Periodic, nil
}
