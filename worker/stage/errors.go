package stage

// PermanentError is a failure that retrying cannot fix: bad input, an
// unsupported format, a model that refuses the request. Its Reason is what
// the manifest shows.
type PermanentError struct {
	Reason string
	Err    error
}

func (e *PermanentError) Error() string {
	if e.Err != nil && e.Reason == "" {
		return e.Err.Error()
	}
	return e.Reason
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError with a reason for people.
func Permanent(reason string, err error) error {
	return &PermanentError{Reason: reason, Err: err}
}

// FatalError stops the whole batch: the provider refused the key or the
// model. One message is recorded for the batch and every remaining item
// fails fast with it.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return "batch stopped: " + e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }
