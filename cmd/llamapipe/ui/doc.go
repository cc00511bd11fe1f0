// Package ui is the command line's presentation of a batch: the progress
// bar (or plain lines when not on a terminal) that follows a batch to its
// manifest, and the status lines of its counts and its webhook.
//
// It reads batch records through a small Tracker interface and writes
// text; it decides no exit codes and knows no flags. Only cmd/llamapipe
// imports it.
package ui
