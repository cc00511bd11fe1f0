// Package document is the document stage of the worker: extract → chunk →
// map → reduce → write. For one document item it extracts the text (PDF
// pages with page markers, DOCX, HTML, TXT, MD; PDF pages without text are
// rendered for a model that reads images), and either asks the model for the
// digest in one request or, for a longer document, plans and writes its
// chunks (chunk PDFs cut by worker/pdfsplit, or text chunks) under the
// batch's work prefix and hands back one map payload per chunk. A long
// PDF's page texts, extracted once while planning, are kept there too
// (chunk-NNNN.pages.json, pagetext.go) for the map tasks. A chunk is
// mapped by Map (map-NNNN.json), and Reduce combines the map answers in a
// tree and writes <base>.summary.json and .summary.md.
//
// It is handed everything per item (document.Item: the payload, the output
// store, the model, a logger, the item's Reporter, a way to read the source)
// and gets its settings from Config, which worker.New builds. It must not
// know asynq or its mux (the worker enqueues the map and reduce tasks it
// plans), the batch record beyond the Reporter it is handed (progress and
// whether the item must stop), batch mode (the Model it is given decides
// online or batch) or tenants, and it never imports the worker package or
// another stage.
package document
