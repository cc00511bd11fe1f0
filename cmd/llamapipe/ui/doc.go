// Package ui is the command line's presentation of a batch: the progress
// bar (or plain lines when not on a terminal) that follows a batch to its
// manifest, the status lines of its counts and its webhook, and the
// table of a plan.
//
// It reads batch records through a small Tracker interface and writes
// text; it decides no exit codes and knows no flags. Only cmd/llamapipe
// imports it.
package ui
