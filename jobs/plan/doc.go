// Package plan holds the estimate of a batch before it runs, as `plan`
// prints it and the API's submit answer carries it: per-item estimates
// (Item), totals by kind (Totals) and the whole (Plan), with the skip
// reasons a plan reports. Data only: ingest lists and samples
// (ingest.Ingester.Plan), worker/estimate estimates one item and prices
// the totals.
package plan
