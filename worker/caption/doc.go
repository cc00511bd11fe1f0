// Package caption is the image stage of the worker: prepare → caption →
// write. For one image item it looks up the item's product (CSV or JSONL
// sidecars), reuses a caption of identical bytes when one is cached, else
// prepares the image (safe decode, orientation, resize under the model's
// limits, in a bounded number of decode slots), asks the model for the
// caption JSON (stage.Ask) and writes <base>.caption.json next to the
// batch's other results.
//
// Images go to the model inline, or by URL where the profile asks for it
// (Transport: DashScope): the prepared image is put in the output's work
// area (ImageWorkKey), the provider client presigns a GET URL of it right
// before each call, and the object is removed when the call ends.
//
// It is handed everything per item (caption.Item: the payload, the output
// store, the model, a logger, a way to read the source again) and gets its
// settings from Config, which worker.New builds. It must not know asynq or
// its mux, the batch record beyond the caption cache it is handed (Cache),
// batch mode (the Model it is given decides online or batch) or tenants
// beyond the name its cache is scoped by (Cache.ContentScope: captions are
// reused only within a tenant), and it never imports the worker package or
// another stage.
package caption
