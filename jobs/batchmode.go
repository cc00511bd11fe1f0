package jobs

// Model modes (Options.ModelMode).
const (
	ModelOnline = "online"
	ModelBatch  = "batch"
	ModelAuto   = "auto"
)

// ValidModelMode reports whether m is a model mode ("" is online).
func ValidModelMode(m string) bool {
	switch m {
	case "", ModelOnline, ModelBatch, ModelAuto:
		return true
	}
	return false
}

// UsesBatchAPI reports whether items of a batch with these options on this
// queue go through the provider's batch API: batch mode, or auto mode on
// the nightly queue.
func UsesBatchAPI(o Options, queue string) bool {
	return o.ModelMode == ModelBatch || (o.ModelMode == ModelAuto && queue == QueueNightly)
}
