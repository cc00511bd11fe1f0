// Command llamapipe turns folders of documents and images into model-written
// results: summaries of contracts and captions of product images.
//
//	llamapipe run SRC... --out DST         ingest, work and wait, on one machine
//	llamapipe ingest SRC... --out DST      enqueue a batch; prints its ID
//	llamapipe worker                       process queued tasks
//	llamapipe status BATCH [--wait]        follow a batch
//
// main only wires: one file per command, each an options struct, the flags
// that fill it and a runX that calls a library (ingest/, ingest/schedule,
// jobs/, worker/, storage/; bench for the bench harness, ui for the progress
// display); run maps the error to the exit status once.
package main

import (
	"context"
	"os"
)

func main() { os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr)) }
