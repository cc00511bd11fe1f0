package tenants

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llamapipe/llamapipe/jobs"
)

// Limits is one period's budget. Zero (or absent) is unlimited.
type Limits struct {
	// Cost is money in the model profile's currency. Zero: unlimited.
	Cost float64 `yaml:"cost" json:"cost,omitempty"`
	// Tokens counts input plus output tokens. Zero: unlimited.
	Tokens int64 `yaml:"tokens" json:"tokens,omitempty"`
}

// Unlimited reports whether neither money nor tokens are capped.
func (l Limits) Unlimited() bool { return l.Cost <= 0 && l.Tokens <= 0 }

// Budget is a tenant's daily and monthly budget.
type Budget struct {
	// Daily caps spend per calendar day (of Config.Timezone). Zero: none.
	Daily Limits `yaml:"daily" json:"daily,omitzero"`
	// Monthly caps spend per calendar month. Zero: none.
	Monthly Limits `yaml:"monthly" json:"monthly,omitzero"`
}

// Tenant is one tenant's share and budget.
type Tenant struct {
	// Share is the tenant's weight in the fair share of model throughput.
	// Zero (absent) means 1.
	Share float64 `yaml:"share" json:"share"`
	// Budget caps the tenant's spend. Zero: unlimited.
	Budget Budget `yaml:"budget" json:"budget,omitzero"`
	// Sources are the locations (s3://bucket/prefix, file:///folder or an
	// absolute folder) the tenant's API submits may read, on top of the
	// server's --allow. See Config.Locations for a tenant that lists none.
	Sources []string `yaml:"sources" json:"sources,omitempty"`
	// Outputs are the locations the tenant's API submits may write to, on
	// top of the server's --allow-out.
	Outputs []string `yaml:"outputs" json:"outputs,omitempty"`
	// WebhookSecretFile names a file holding the key the tenant's
	// completion webhooks are signed with (never the key itself: the
	// tenants file is no place for secrets). A relative path is relative
	// to the tenants file's folder. Empty: Default's, else the workers'
	// global key (--webhook-secret-file, LLAMAPIPE_WEBHOOK_SECRET).
	WebhookSecretFile string `yaml:"webhook_secret_file" json:"webhook_secret_file,omitempty"`
}

// Config is a parsed tenants file:
//
//	tenants:
//	  legal:   {share: 3, budget: {daily: {cost: 50}, monthly: {cost: 800}}}
//	  catalog: {share: 1, budget: {daily: {tokens: 20000000}}}
//	  alpha:
//	    sources: [s3://data/alpha/, /srv/inbox/alpha]
//	    outputs: [s3://results/alpha/]
//	    webhook_secret_file: /run/secrets/alpha-webhook
//	default: {share: 1}       # tenants not listed, and batches with no tenant
//	timezone: Europe/Berlin   # days and months; absent: UTC
//	slots: 16                 # model calls in flight across all workers
type Config struct {
	// Tenants are the listed tenants by name.
	Tenants map[string]Tenant `yaml:"tenants"`
	// Default applies to tenants not listed and to batches without a
	// tenant. Zero: share 1, no budget.
	Default Tenant `yaml:"default"`
	// Timezone names the IANA zone days and months are counted in. Empty:
	// UTC.
	Timezone string `yaml:"timezone"`
	// Currency is the ISO code money budgets are in (e.g. EUR). A batch or
	// worker whose model profile is priced in another currency is refused
	// while any tenant has a money budget (ErrCurrency). Empty: budgets
	// are in whatever the profile's currency is.
	Currency string `yaml:"currency"`
	// Slots is how many model calls may be in flight at once across every
	// worker sharing one Redis, divided between the active tenants by
	// share. Zero: the worker's own default (see the README). Read when a
	// worker starts.
	Slots int `yaml:"slots"`
	// Waiting is how many more calls may wait for a slot across every
	// worker, divided by share; the others go back to the queue for a
	// second or two. Zero: the worker's own default. Read when a worker
	// starts.
	Waiting int `yaml:"waiting"`

	loc *time.Location
	// dir is the tenants file's folder (relative webhook_secret_file
	// paths are resolved against it); "" is the working folder.
	dir string
}

// CheckName refuses a tenant name that cannot be one (jobs.ValidTenant);
// "" is no tenant, and allowed.
func CheckName(name string) error {
	if name == "" {
		return nil
	}
	return jobs.ValidTenant(name)
}

// Parse reads and validates a tenants file.
func Parse(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) validate() error {
	c.loc = time.UTC
	if c.Timezone != "" {
		loc, err := time.LoadLocation(c.Timezone)
		if err != nil {
			return fmt.Errorf("tenants file: timezone %q: %w", c.Timezone, err)
		}
		c.loc = loc
	}
	if c.Slots < 0 || c.Waiting < 0 {
		return fmt.Errorf("tenants file: slots %d, waiting %d: give 0 (the worker's default) or more", c.Slots, c.Waiting)
	}
	check := func(name string, t Tenant) error {
		if t.Share < 0 || math.IsNaN(t.Share) || math.IsInf(t.Share, 0) {
			return fmt.Errorf("tenants file: %s: share %v: give a positive number", name, t.Share)
		}
		for _, l := range []struct {
			p string
			l Limits
		}{{"daily", t.Budget.Daily}, {"monthly", t.Budget.Monthly}} {
			if l.l.Cost < 0 || math.IsNaN(l.l.Cost) || math.IsInf(l.l.Cost, 0) || l.l.Tokens < 0 {
				return fmt.Errorf("tenants file: %s: %s budget: give 0 (unlimited) or a positive cost and tokens", name, l.p)
			}
		}
		for _, l := range [][]string{t.Sources, t.Outputs} {
			for _, s := range l {
				if err := checkLocation(s); err != nil {
					return fmt.Errorf("tenants file: %s: %w", name, err)
				}
			}
		}
		return nil
	}
	if err := check("default", c.Default); err != nil {
		return err
	}
	for _, name := range c.Names() {
		if err := jobs.ValidTenant(name); err != nil {
			return fmt.Errorf("tenants file: %w", err)
		}
		if err := check(name, c.Tenants[name]); err != nil {
			return err
		}
	}
	return nil
}

// ErrCurrency refuses a model profile priced in another currency than
// the tenants' money budgets.
var ErrCurrency = errors.New("money budgets and model prices are in different currencies")

// CheckCurrency refuses (ErrCurrency) a model priced in currency when the
// file's money budgets are in another (Config.Currency), naming the first
// tenant with a money budget. Token budgets and files without a currency
// take any profile.
func (c *Config) CheckCurrency(currency string) error {
	if c.Currency == "" || strings.EqualFold(c.Currency, currency) {
		return nil
	}
	for _, name := range append([]string{""}, c.Names()...) {
		t := c.Default
		if name != "" {
			t = c.Tenants[name]
		}
		if t.Budget.Daily.Cost > 0 || t.Budget.Monthly.Cost > 0 {
			return fmt.Errorf("%w: tenant %s has a budget in %s but the model profile is priced in %s: use a profile priced in %s (a --profiles file can set its prices), or a token budget",
				ErrCurrency, cmpOr(name, "default"), c.Currency, cmpOr(currency, "no currency"), c.Currency)
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Names returns the listed tenants' names, sorted.
func (c *Config) Names() []string {
	out := make([]string, 0, len(c.Tenants))
	for n := range c.Tenants {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lookup returns a tenant's settings: its entry, else Default. A nil
// Config is share 1 and no budget.
func (c *Config) Lookup(name string) Tenant {
	if c == nil {
		return Tenant{Share: 1}
	}
	t, ok := c.Tenants[name]
	if !ok || name == "" {
		t = c.Default
	}
	if t.Share == 0 {
		t.Share = 1
	}
	return t
}

// Share is a tenant's weight (1 unless set).
func (c *Config) Share(name string) float64 { return c.Lookup(name).Share }

// Location is the zone days and months are counted in (UTC by default).
func (c *Config) Location() *time.Location {
	if c == nil || c.loc == nil {
		return time.UTC
	}
	return c.loc
}

// Periods names the day and month that at falls in, in c's zone
// ("2026-11-25", "2026-11").
func (c *Config) Periods(at time.Time) (day, month string) {
	t := at.In(c.Location())
	return t.Format("2006-01-02"), t.Format("2006-01")
}

// NextDay is the start of the day after at's, in c's zone.
func (c *Config) NextDay(at time.Time) time.Time {
	t := at.In(c.Location())
	return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, t.Location())
}
