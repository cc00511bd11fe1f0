package ingest

import "fmt"

// SourceError is Run's and Plan's error for a source that cannot be
// opened before anything is created: errors.Is(err, storage.ErrNotExist)
// tells a source that does not exist (a missing folder or bucket), which the
// CLI reports with an exit status of its own.
type SourceError struct {
	Source string
	Err    error
}

func (e *SourceError) Error() string { return fmt.Sprintf("source %s: %v", e.Source, e.Err) }
func (e *SourceError) Unwrap() error { return e.Err }
