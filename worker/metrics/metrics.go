package metrics

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/worker/llm"
)

// Names of the metrics *Metrics exports (histograms also export the
// _bucket, _sum and _count series; see Names).
const (
	ItemsTotal            = "llamapipe_items_total"
	ItemDuration          = "llamapipe_item_duration_seconds"
	ModelRequestsTotal    = "llamapipe_model_requests_total"
	ModelRequestDuration  = "llamapipe_model_request_duration_seconds"
	ModelTokensTotal      = "llamapipe_model_tokens_total"
	ModelCostTotal        = "llamapipe_model_cost_total"
	ModelErrorsTotal      = "llamapipe_model_errors_total"
	ImagePrepareDuration  = "llamapipe_image_prepare_duration_seconds"
	TextExtractDuration   = "llamapipe_text_extract_duration_seconds"
	RateLimitWaitDuration = "llamapipe_rate_limit_wait_seconds"
	RetriesTotal          = "llamapipe_retries_total"
	FairShareDeferred     = "llamapipe_fair_share_deferred_total"
	BatchModeFailures     = "llamapipe_batchmode_failures_total"
	ProviderDown          = "llamapipe_provider_down"
)

// Error classes of ModelErrorsTotal's "class" label.
const (
	ClassRateLimited = "rate_limited" // HTTP 429: not a failure, but a sign to slow down
	ClassServer      = "server_error" // 5xx
	ClassTransport   = "transport"    // no usable answer: resets, truncated or garbage bodies
	ClassTimeout     = "timeout"      // deadline exceeded, 408
	ClassTooLarge    = "too_large"    // 413 or "too large"
	ClassBadRequest  = "bad_request"  // other 4xx: wrong for this item
	ClassAuth        = "auth"         // 401/403: the batch stops
	ClassCanceled    = "canceled"     // the worker is shutting down
	ClassOther       = "other"        // not a classified provider error
)

// Metrics records a worker's measurements. Its methods are safe for
// concurrent use, and a nil *Metrics records nothing.
type Metrics struct {
	items        *prometheus.CounterVec
	itemDuration *prometheus.HistogramVec
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	tokens       *prometheus.CounterVec
	cost         *prometheus.CounterVec
	errors       *prometheus.CounterVec
	imagePrep    prometheus.Histogram
	extract      *prometheus.HistogramVec
	rateWait     prometheus.Histogram
	retries      *prometheus.CounterVec
	deferred     *prometheus.CounterVec
	bmFailures   *prometheus.CounterVec
	down         *prometheus.GaugeVec
	// downUntil is when each provider and model this worker saw down is
	// up again (ProviderDown).
	downMu    sync.Mutex
	downUntil map[[2]string]time.Time
}

type kind int

const (
	counter kind = iota
	histogram
	gauge
)

type def struct {
	name, help string
	kind       kind
	labels     []string
	buckets    []float64
}

// defs lists every metric of Metrics; New builds from it and Names reads it,
// so the two cannot drift.
func defs() []def {
	return []def{
		{ItemsTotal, "Items that reached a final status, by kind (document, image, other), status (done, failed, skipped) and tenant (empty: none).", counter, []string{"kind", "status", "tenant"}, nil},
		{ItemDuration, "Wall time of items that reached a final status, by kind and status.", histogram, []string{"kind", "status"}, prometheus.ExponentialBucketsRange(0.1, 3600, 14)},
		{ModelRequestsTotal, "Model requests, by provider, model and outcome (ok or error).", counter, []string{"provider", "model", "outcome"}, nil},
		{ModelRequestDuration, "Latency of model requests, successful or not, by provider and model.", histogram, []string{"provider", "model"}, prometheus.ExponentialBucketsRange(0.05, 600, 16)},
		{ModelTokensTotal, "Tokens of model requests, by provider, model, direction (input or output) and tenant (empty: none).", counter, []string{"provider", "model", "direction", "tenant"}, nil},
		{ModelCostTotal, "Cost of model requests in the currency of the currency label (the profile's), by provider, model and tenant (empty: none).", counter, []string{"provider", "model", "tenant", "currency"}, nil},
		{ModelErrorsTotal, "Failed model requests, by provider, model and class (rate_limited, server_error, transport, timeout, too_large, bad_request, auth, canceled, other).", counter, []string{"provider", "model", "class"}, nil},
		{ImagePrepareDuration, "Time to decode, orient, resize and encode one image.", histogram, nil, prometheus.ExponentialBucketsRange(0.005, 60, 14)},
		{TextExtractDuration, "Time to extract the text of one document or chunk, by kind (pdf, docx, html, text, ...).", histogram, []string{"kind"}, prometheus.ExponentialBucketsRange(0.005, 600, 16)},
		{RateLimitWaitDuration, "Time spent waiting for the shared model rate limit before a request.", histogram, nil, prometheus.ExponentialBucketsRange(0.001, 300, 16)},
		{RetriesTotal, "Item attempts that failed and will be retried, by reason.", counter, []string{"reason"}, nil},
		{BatchModeFailures, "Failed calls to a provider's batch API (its requests go online after a bound: --batch-online-after), by group (preset or provider, and model) and stage (collect: upload and job creation; poll: job status and results).", counter, []string{"group", "stage"}, nil},
		{ProviderDown, "1 while a fallback chain's provider (the preset, else the provider) and model is down as this worker saw it: from the call that took it down, or found it down, until its down time ends (the cool-down, or a long 429's wait); then 0. No series for a provider this worker never saw down.", gauge, []string{"provider", "model"}, nil},
		{FairShareDeferred, "Model calls the fair-share gate sent back to the queue because their tenant had its share while others waited, by tenant.", counter, []string{"tenant"}, nil},
	}
}

// New registers the worker metrics on reg and returns them. It panics if
// they are already registered on reg (a programming error, as with
// prometheus.MustRegister).
func New(reg prometheus.Registerer) *Metrics {
	cs := map[string]prometheus.Collector{}
	for _, d := range defs() {
		var c prometheus.Collector
		switch {
		case d.kind == counter:
			c = prometheus.NewCounterVec(prometheus.CounterOpts{Name: d.name, Help: d.help}, d.labels)
		case d.kind == gauge:
			c = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: d.name, Help: d.help}, d.labels)
		case len(d.labels) == 0:
			c = prometheus.NewHistogram(prometheus.HistogramOpts{Name: d.name, Help: d.help, Buckets: d.buckets})
		default:
			c = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: d.name, Help: d.help, Buckets: d.buckets}, d.labels)
		}
		reg.MustRegister(c)
		cs[d.name] = c
	}
	return &Metrics{
		items:        cs[ItemsTotal].(*prometheus.CounterVec),
		itemDuration: cs[ItemDuration].(*prometheus.HistogramVec),
		requests:     cs[ModelRequestsTotal].(*prometheus.CounterVec),
		latency:      cs[ModelRequestDuration].(*prometheus.HistogramVec),
		tokens:       cs[ModelTokensTotal].(*prometheus.CounterVec),
		cost:         cs[ModelCostTotal].(*prometheus.CounterVec),
		errors:       cs[ModelErrorsTotal].(*prometheus.CounterVec),
		imagePrep:    cs[ImagePrepareDuration].(prometheus.Histogram),
		extract:      cs[TextExtractDuration].(*prometheus.HistogramVec),
		rateWait:     cs[RateLimitWaitDuration].(prometheus.Histogram),
		retries:      cs[RetriesTotal].(*prometheus.CounterVec),
		deferred:     cs[FairShareDeferred].(*prometheus.CounterVec),
		bmFailures:   cs[BatchModeFailures].(*prometheus.CounterVec),
		down:         cs[ProviderDown].(*prometheus.GaugeVec),
		downUntil:    map[[2]string]time.Time{},
	}
}

// NewRegistry returns a registry with the Go runtime and process
// collectors, for a process's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Names returns the name of every series the worker metrics export,
// histograms' _bucket, _sum and _count series included.
func Names() []string {
	var out []string
	for _, d := range defs() {
		if d.kind == histogram {
			out = append(out, d.name+"_bucket", d.name+"_sum", d.name+"_count")
			continue
		}
		out = append(out, d.name)
	}
	return out
}

// ItemEnded records an item's final status (jobs.StatusDone, StatusFailed or
// StatusSkipped) and how long it took, for no tenant.
func (m *Metrics) ItemEnded(kind jobs.Kind, status string, d time.Duration) {
	m.ItemEndedFor("", kind, status, d)
}

// ItemEndedFor is ItemEnded for a tenant's item ("": none).
func (m *Metrics) ItemEndedFor(tenant string, kind jobs.Kind, status string, d time.Duration) {
	if m == nil {
		return
	}
	m.items.WithLabelValues(string(kind), status, tenant).Inc()
	m.itemDuration.WithLabelValues(string(kind), status).Observe(d.Seconds())
}

// ModelRequest records one model request: its latency, tokens and cost,
// and, when err is not nil, its error class (see ErrorClass), for no tenant.
func (m *Metrics) ModelRequest(provider, model string, d time.Duration, inTok, outTok int, cost float64, err error) {
	m.ModelRequestFor("", provider, model, d, inTok, outTok, cost, "", err)
}

// ModelRequestFor is ModelRequest for a call serving a tenant's item (""
// none): its tokens and cost carry the tenant label, the cost its currency
// (label currency).
func (m *Metrics) ModelRequestFor(tenant, provider, model string, d time.Duration, inTok, outTok int, cost float64, currency string, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
		m.errors.WithLabelValues(provider, model, ErrorClass(err)).Inc()
	}
	m.requests.WithLabelValues(provider, model, outcome).Inc()
	m.latency.WithLabelValues(provider, model).Observe(d.Seconds())
	if inTok > 0 {
		m.tokens.WithLabelValues(provider, model, "input", tenant).Add(float64(inTok))
	}
	if outTok > 0 {
		m.tokens.WithLabelValues(provider, model, "output", tenant).Add(float64(outTok))
	}
	if cost > 0 {
		m.cost.WithLabelValues(provider, model, tenant, currency).Add(cost)
	}
}

// ImagePrepared records the preparation time of one image.
func (m *Metrics) ImagePrepared(d time.Duration) {
	if m == nil {
		return
	}
	m.imagePrep.Observe(d.Seconds())
}

// TextExtracted records the extraction time of one document or chunk of the
// given file type (jobs.FilePDF, jobs.FileDOCX, ...), which is its kind
// label.
func (m *Metrics) TextExtracted(t jobs.FileType, d time.Duration) {
	if m == nil {
		return
	}
	m.extract.WithLabelValues(string(t)).Observe(d.Seconds())
}

// RateLimitWait records time spent waiting for the shared rate limit.
func (m *Metrics) RateLimitWait(d time.Duration) {
	if m == nil {
		return
	}
	m.rateWait.Observe(d.Seconds())
}

// Retry records an attempt that failed and will be retried; reason is a
// short bounded word such as ErrorClass's result, "storage" or "panic".
func (m *Metrics) Retry(reason string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(reason).Inc()
}

// Deferred records a model call the fair-share gate deferred (see
// ratelimit.FairShareOptions.OnDefer).
func (m *Metrics) Deferred(tenant string) {
	if m == nil {
		return
	}
	m.deferred.WithLabelValues(tenant).Inc()
}

// ErrorClass sorts a model request's error into one of the Class* values.
func ErrorClass(err error) string {
	var le *llm.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &le):
		switch {
		case le.RateLimited || le.Status == 429:
			return ClassRateLimited
		case le.Kind == llm.Fatal:
			return ClassAuth
		case le.Kind == llm.TooLarge:
			return ClassTooLarge
		case le.Status == 408:
			return ClassTimeout
		case le.Status >= 500:
			return ClassServer
		case le.Kind == llm.Permanent:
			return ClassBadRequest
		case le.Err != nil && errors.Is(le.Err, context.DeadlineExceeded):
			return ClassTimeout
		case le.Err != nil && isNetTimeout(le.Err):
			return ClassTimeout
		}
		return ClassTransport
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.Is(err, context.DeadlineExceeded), isNetTimeout(err):
		return ClassTimeout
	}
	return ClassOther
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// BatchModeFailure counts one failed call to a provider's batch API.
func (m *Metrics) BatchModeFailure(group, stage string) {
	if m == nil {
		return
	}
	m.bmFailures.WithLabelValues(group, stage).Inc()
}

// ProviderDown records that provider's model is down until until: its
// gauge is 1 until then, and 0 after (by itself). A zero or past until
// says it is up: 0 now, for a provider seen down before (no series is made
// for one never seen down).
func (m *Metrics) ProviderDown(provider, model string, until time.Time) {
	if m == nil {
		return
	}
	k := [2]string{provider, model}
	m.downMu.Lock()
	defer m.downMu.Unlock()
	prev, seen := m.downUntil[k]
	d := time.Until(until)
	if d <= 0 {
		if seen && !prev.IsZero() {
			m.downUntil[k] = time.Time{}
			m.down.WithLabelValues(provider, model).Set(0)
		}
		return
	}
	if prev.Equal(until) {
		return
	}
	m.downUntil[k] = until
	m.down.WithLabelValues(provider, model).Set(1)
	time.AfterFunc(d, func() {
		m.downMu.Lock()
		defer m.downMu.Unlock()
		if m.downUntil[k].Equal(until) {
			m.downUntil[k] = time.Time{}
			m.down.WithLabelValues(provider, model).Set(0)
		}
	})
}
