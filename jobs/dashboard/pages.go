package dashboard

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
	"github.com/llamapipe/llamapipe/jobs/eta"
	"github.com/llamapipe/llamapipe/jobs/outage"
	"github.com/llamapipe/llamapipe/jobs/series"
	"github.com/llamapipe/llamapipe/jobs/tenants"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages renders the batch list and a batch's detail.
type pages struct {
	tracker    Batches
	n          int
	now        func() time.Time
	log        *slog.Logger
	listTmpl   *template.Template
	detailTmpl *template.Template
	// budgets read a batch's tenant's spend (set by New).
	budgets *tenants.Budgets
	// down reads the providers down (set by New).
	down *outage.Reader
	// results is true when the results view is served (Config.Open).
	results bool
	// rates holds each viewed batch's recent progress, for a rate and ETA
	// over the last 10 minutes rather than since the batch was created.
	rates eta.Window
}

// TenantView is a batch's tenant and its spend as the batch page shows it.
type TenantView struct {
	Name string
	// Today and Month are the spend in the period with what is left of its
	// budget; Zone names the time zone days are counted in.
	Today, Month, Zone string
}

// tenantView shows st with money in currency (the tenants file's, else
// the batch's).
func tenantView(st tenants.Status, currency string) *TenantView {
	line := func(spent tenants.Spend, left tenants.Remaining) string {
		s := fmt.Sprintf("%s, %d tokens", money(spent.Cost, currency), spent.Tokens)
		var l []string
		if left.Cost != nil {
			l = append(l, money(*left.Cost, currency))
		}
		if left.Tokens != nil {
			l = append(l, fmt.Sprintf("%d tokens", *left.Tokens))
		}
		if len(l) > 0 {
			s += " — left: " + strings.Join(l, ", ")
		}
		return s
	}
	return &TenantView{Name: st.Tenant, Today: line(st.Today, st.RemainingToday()),
		Month: line(st.ThisMonth, st.RemainingThisMonth()), Zone: st.Timezone}
}

func newPages(tr Batches, n int, now func() time.Time, log *slog.Logger) (*pages, error) {
	funcs := template.FuncMap{
		"when":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"cost":    jobs.Counts.CostText,
		"percent": func(f float64) string { return fmt.Sprintf("%.1f%%", f) },
		"rate":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
		"join":    strings.Join,
	}
	parse := func(name string) (*template.Template, error) {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", name, err)
		}
		return t, nil
	}
	l, err := parse("list.html")
	if err != nil {
		return nil, err
	}
	d, err := parse("detail.html")
	if err != nil {
		return nil, err
	}
	return &pages{tracker: tr, n: n, now: now, log: log, listTmpl: l, detailTmpl: d}, nil
}

// BatchView is one batch as the pages show it.
type BatchView struct {
	jobs.Batch
	Counts jobs.Counts
	// State is listing (not sealed yet), running, finalizing (every item
	// ended, manifest not written yet), finished or stopped (fatal error).
	State string
	// Percent is the share of items that ended, 0-100 (0 while listing).
	Percent float64
	// RatePerMin is items ended per minute since the batch was created (to
	// its end, once finished).
	RatePerMin float64
	// ETA is the estimated time left, as text.
	ETA string
	// Refresh is true while the batch may still change.
	Refresh bool
}

func (p *pages) view(ctx context.Context, id string) (BatchView, error) {
	b, err := p.tracker.Get(ctx, id)
	if err != nil {
		return BatchView{}, err
	}
	if !sessionOf(ctx).sees(b) { // another tenant's batch: as if it did not exist
		return BatchView{}, fmt.Errorf("batch %s: %w", id, jobs.ErrNoBatch)
	}
	c, err := p.tracker.Counts(ctx, id)
	if err != nil {
		return BatchView{}, err
	}
	now := p.now()
	v := summarize(b, c, now)
	if r, ok := p.rates.Observe(id, now, c.Ended()); ok && v.State == jobs.StateRunning {
		v.RatePerMin = r // over the window: right after a pause, in batch mode
		v.ETA = "unknown: nothing ended in the last 10 minutes"
		if d, ok := eta.Left(c.Total-c.Ended(), r); ok {
			v.ETA = roundDuration(d)
		}
	}
	return v, nil
}

// summarize computes a batch's state, rate and ETA at time now.
func summarize(b jobs.Batch, c jobs.Counts, now time.Time) BatchView {
	v := BatchView{Batch: b, Counts: c}
	v.State = c.State()
	v.Refresh = !jobs.Ended(v.State)
	if c.Total > 0 {
		v.Percent = min(100, 100*float64(c.Ended())/float64(c.Total))
	}
	end := now
	if c.Finalized && !c.Finished.IsZero() {
		end = c.Finished
	}
	if elapsed := end.Sub(b.Created); elapsed > 0 && !b.Created.IsZero() {
		v.RatePerMin = float64(c.Ended()) / elapsed.Minutes()
	}
	switch {
	case v.State == jobs.StateFinished || v.State == jobs.StateFinalizing:
		v.ETA = "done"
	case v.State == jobs.StateStopped || v.State == jobs.StateCancelled || v.State == jobs.StateCancelling:
		v.ETA = v.State
	case !c.Sealed:
		v.ETA = "unknown until listing ends"
	case v.RatePerMin <= 0:
		v.ETA = "unknown until items end"
	default:
		left := float64(c.Total - c.Ended())
		v.ETA = roundDuration(time.Duration(left / v.RatePerMin * float64(time.Minute)))
	}
	return v
}

// roundDuration shows a duration to the minute (seconds under a minute).
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 24*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd %s", days, strings.TrimSuffix((d%(24*time.Hour)).Round(time.Minute).String(), "0s"))
}

func (p *pages) list(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess := sessionOf(ctx)
	ids, err := p.ids(ctx, sess)
	if err != nil {
		p.fail(w, "list batches", err)
		return
	}
	data := struct {
		Title   string
		Session Session
		Batches []BatchView
		Broken  []string
		Gone    []string
		Refresh bool
	}{Title: "Batches", Session: sess}
	for _, id := range ids {
		v, err := p.view(ctx, id)
		if !sess.AllTenants() && err != nil {
			continue // a tenant is not told of batches it cannot open
		}
		if g := jobs.Gone(err); g != nil {
			data.Gone = append(data.Gone, id+" ("+g.State+")")
			continue
		}
		if err != nil {
			p.log.Warn("dashboard: unreadable batch", "batch", id, "err", err)
			data.Broken = append(data.Broken, id)
			continue
		}
		data.Refresh = data.Refresh || v.Refresh
		data.Batches = append(data.Batches, v)
	}
	p.render(w, p.listTmpl, data)
}

// tenantLister lists one tenant's batches (*jobs.Tracker has it).
type tenantLister interface {
	ListTenant(ctx context.Context, tenant string, n int) ([]string, error)
}

var _ tenantLister = (*jobs.Tracker)(nil)

// ids lists the batches the session may see, newest first: a tenant's
// from its own index when the tracker has one (else every batch, which
// view then filters).
func (p *pages) ids(ctx context.Context, s Session) ([]string, error) {
	if tl, ok := p.tracker.(tenantLister); ok && !s.AllTenants() {
		return tl.ListTenant(ctx, s.Tenant, p.n)
	}
	return p.tracker.List(ctx, p.n)
}

// ReasonGroup is the items that failed or were skipped for one reason.
type ReasonGroup struct {
	Reason   string
	Count    int
	Examples []string // up to maxExamples sources
}

const maxExamples = 5

// maxReasons bounds the groups kept per status: a batch whose failures
// all differ (a reason naming each file) still costs bounded memory; the
// rest are counted under otherReasons.
const maxReasons = 200

const otherReasons = "(other reasons)"

// reasonGroups groups a batch's entries of one status by reason as they
// stream by (Tracker.EachEntry), with up to maxExamples sources each.
type reasonGroups struct {
	status   string
	byReason map[string]*ReasonGroup
}

func newReasonGroups(status string) *reasonGroups {
	return &reasonGroups{status: status, byReason: map[string]*ReasonGroup{}}
}

func (rg *reasonGroups) add(e jobs.Entry) {
	if e.Status != rg.status {
		return
	}
	reason := e.Error
	if reason == "" {
		reason = "(no reason recorded)"
	}
	g := rg.byReason[reason]
	if g == nil && len(rg.byReason) >= maxReasons {
		reason = otherReasons
		g = rg.byReason[reason]
	}
	if g == nil {
		g = &ReasonGroup{Reason: reason}
		rg.byReason[reason] = g
	}
	g.Count++
	if len(g.Examples) < maxExamples {
		g.Examples = append(g.Examples, e.Source)
	}
}

// groups lists the groups, most frequent first.
func (rg *reasonGroups) groups() []ReasonGroup {
	out := make([]ReasonGroup, 0, len(rg.byReason))
	for _, g := range rg.byReason {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	return out
}

// Location is a result file's place, with a link when a browser can open it.
type Location struct {
	Where string
	Link  string // empty unless Where is an http(s) URL
}

func locate(out, key string) Location {
	where := strings.TrimRight(out, "/") + "/" + key
	l := Location{Where: where}
	if u, err := url.Parse(where); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		l.Link = where
	}
	return l
}

func (p *pages) detail(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	v, err := p.view(ctx, id)
	if g := jobs.Gone(err); g != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusGone)
		fmt.Fprintln(w, goneText(g))
		return
	}
	if errors.Is(err, jobs.ErrNoBatch) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintln(w, "no such batch")
		return
	}
	if err != nil {
		p.fail(w, "batch", err)
		return
	}
	failed, skipped := newReasonGroups(jobs.StatusFailed), newReasonGroups(jobs.StatusSkipped)
	if err := p.tracker.EachEntry(ctx, id, func(e jobs.Entry) error {
		failed.add(e)
		skipped.add(e)
		return nil
	}); err != nil {
		p.fail(w, "batch entries", err)
		return
	}
	running, err := p.tracker.Progress(ctx, id)
	if err != nil {
		p.fail(w, "batch progress", err)
		return
	}
	var tenant *TenantView
	var status *tenants.Status
	currency := v.Counts.Currency
	if v.Tenant != "" && p.budgets != nil {
		currency = cmp.Or(p.budgets.Config().Currency, currency)
		st, err := p.budgets.Status(ctx, v.Tenant)
		if err != nil {
			p.log.Warn("tenant spend", "batch_id", id, "err", err)
			tenant = &TenantView{Name: v.Tenant}
		} else {
			tenant, status = tenantView(st, currency), &st
		}
	}
	var buckets []series.Bucket
	if sr, ok := p.tracker.(seriesReader); ok {
		h, err := sr.Series(ctx, id)
		if err != nil {
			p.fail(w, "batch series", err)
			return
		}
		buckets = series.Parse(h)
	}
	var down []outage.Down
	if p.down != nil && !jobs.Ended(v.State) {
		if down, err = p.down.ProvidersDown(ctx, v.Batch); err != nil {
			p.log.Warn("providers down", "batch_id", id, "err", err)
		}
	}
	data := struct {
		Title    string
		Session  Session
		Down     []outage.Down
		Tenant   *TenantView
		Running  []jobs.Progress
		Batch    BatchView
		Failed   []ReasonGroup
		Skipped  []ReasonGroup
		Manifest Location
		Report   Location
		Refresh  bool
		Charts   Charts
		// Results links the results view (Config.Open).
		Results string
	}{
		Title:    "Batch " + id,
		Session:  sessionOf(ctx),
		Down:     down,
		Tenant:   tenant,
		Running:  running,
		Batch:    v,
		Failed:   failed.groups(),
		Skipped:  skipped.groups(),
		Manifest: locate(v.Out, v.ManifestPath()),
		Report:   locate(v.Out, v.ReportPath()),
		Refresh:  v.Refresh,
		Charts:   buildCharts(v.Counts, buckets, status, currency),
	}
	if p.results {
		data.Results = "/batches/" + url.PathEscape(id) + "/results"
	}
	p.render(w, p.detailTmpl, data)
}

func (p *pages) render(w http.ResponseWriter, t *template.Template, data any) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		p.fail(w, "render", err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

// fail logs err and answers 500 without details (they may name hosts).
func (p *pages) fail(w http.ResponseWriter, what string, err error) {
	p.log.Error("dashboard: "+what, "err", err)
	http.Error(w, "500 internal error: "+what+" failed (see the dashboard's log)", http.StatusInternalServerError)
}

// goneText says why a batch's record is gone.
func goneText(g *jobs.GoneError) string {
	if g.State == jobs.StateExpired {
		when := ""
		if !g.Finished.IsZero() {
			when = " (finished " + g.Finished.UTC().Format(time.RFC3339) + ")"
		}
		return "batch " + g.ID + ": expired: it was finalized" + when + " and its records expired after the retention period; its manifest and report stay in its output"
	}
	return "batch " + g.ID + ": lost: its record vanished before it was finalized (Redis lost data: see the workers' durability warnings)"
}

// money is an amount with its currency, if known.
func money(v float64, currency string) string {
	return strings.TrimSpace(fmt.Sprintf("%.4f %s", v, currency))
}
