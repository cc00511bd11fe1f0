package jobs

// ResultKeys lists the result keys a task writes for an item.
func ResultKeys(resultBase, task string) []string {
	if task == TaskCaption {
		return []string{ResultKey(resultBase, SuffixCaptionJSON)}
	}
	return []string{ResultKey(resultBase, SuffixSummaryJSON), ResultKey(resultBase, SuffixSummaryMD)}
}
