// Package batchapi is the provider batch-API layer of batch mode: the same
// requests the online clients send, written as lines of a provider input
// file, cut at the provider's limits, submitted as a job, followed to its
// end and mapped back, line by line, to the llm.Response (or classified
// error) the online call would have given.
//
// Two providers:
//
//   - OpenAI (OpenAI-style Batch API, for OpenAI-compatible providers that
//     serve it): lines {"custom_id","method":"POST","url":"/v1/chat/completions",
//     "body"} whose body is exactly what openai.Client sends (BatchBody);
//     files uploaded with purpose "batch", batches created with endpoint
//     /v1/chat/completions and window 24h, output and error files read
//     back through the same SDK client, base URL and key.
//   - Bedrock batch inference: records {"recordId","modelInput"} created
//     with modelInvocationType "Converse", so modelInput is the Converse
//     request body bedrock.Client builds (text and image blocks, images as
//     base64 bytes) and modelOutput a Converse response; input and output
//     JSONL live on S3 under a work prefix of a storage.Store; jobs go
//     through CreateModelInvocationJob / GetModelInvocationJob /
//     StopModelInvocationJob. A job needs at least Limits.MinLines records
//     (100 by default): Submit refuses fewer with *TooFewLinesError.
//
// How a worker uses it (the integration this package is built for):
//
//  1. Prepare each item exactly as online (chunks, page images, resized
//     images, prompts), but instead of calling Complete make a Line whose
//     CustomID maps back to the item and step (e.g. "<item>-<chunk>"; keep
//     custom ids to letters, digits, "-" and "_": Bedrock wants
//     alphanumeric record ids), and store the encoded line (Client.Encode)
//     in the run's request area.
//  2. A collector task feeds the lines to a Packer (NewPacker(c.Encode,
//     c.Limits())): each Add may return a cut File; Flush returns the last
//     one. A *LineTooLargeError names the custom id that fits no file:
//     send that item online or fail it. Each File is submitted with
//     Client.Submit(ctx, name, bytes.NewReader(f.Data), f.Lines()); a
//     *TooFewLinesError (Bedrock's minimum) means: send those lines
//     online, or wait for more. Record the returned Job (or its ID).
//  3. A poller task, an asynq task re-enqueued with a delay (no sleeping
//     goroutine), calls Client.Get until Job.State.Done(), then ranges
//     over Client.Results(ctx, job): each Result names its CustomID; the
//     item continues exactly as after an online answer with
//     Result.Response(originalRequest) (or Result.Resp when the request is
//     not at hand: then no JSON extraction and no image-token estimate).
//     A Result.Err that is a *LineError carries the provider's classified
//     *llm.Error (llm.KindOf: retry online once, or fail the item);
//     errors.Is(err, ErrNotAnswered) marks lines the job never answered
//     (expired, cancelled, failed): retry them online or in the next batch;
//     they were not paid for. A non-nil second value from Results is a
//     read failure: retry the poll later.
//  4. Cancelling a run calls Client.Cancel for its jobs; lines answered
//     before the cancel still come back from Results.
//
// Errors: failed API calls are classified *llm.Error values (retryable,
// permanent, fatal) as the online clients make them, with the API key
// redacted; oversized lines, duplicate custom ids and too-small jobs match
// ErrPermanent. Document text and images never reach logs: only job ids,
// states and counts are logged.
//
// It knows nothing of jobs/, Redis, queues or items: custom ids are the
// caller's, and so is the decision what to do with each Result.
package batchapi
