package tenants

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
)

func TestTenantNamesAreCheckedByJobs(t *testing.T) {
	if _, err := Parse([]byte("tenants:\n  \"a:b\": {share: 1}\n")); !errors.Is(err, jobs.ErrBadTenant) {
		t.Errorf("tenants file with tenant a:b: %v, want ErrBadTenant", err)
	}
	if err := CheckName("a:b"); !errors.Is(err, jobs.ErrBadTenant) {
		t.Errorf("CheckName(a:b) (the CLI's --tenant): %v", err)
	}
	if err := CheckName(""); err != nil {
		t.Errorf("CheckName(\"\"): %v", err)
	}
}

func TestLocationsAreTheTenantsOwnOrTheDefaultOrNone(t *testing.T) {
	c, err := Parse([]byte(`tenants:
  alpha: {sources: [s3://data/alpha/, /srv/in/alpha], outputs: [s3://results/alpha/]}
  beta: {share: 2}
  gamma: {sources: [s3://data/gamma]}
`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Locations{
		"alpha": {Sources: []string{"s3://data/alpha/", "/srv/in/alpha"}, Outputs: []string{"s3://results/alpha/"}},
		"beta":  {},                                     // listed without locations: none
		"gamma": {Sources: []string{"s3://data/gamma"}}, // sources only: no output
		"delta": {},                                     // not listed: none
	} {
		got, ok := c.Locations(name)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("Locations(%s) = %+v, %v; want %+v", name, got, ok, want)
		}
	}
	c, err = Parse([]byte("tenants:\n  alpha: {sources: [s3://data/alpha]}\n  beta: {share: 2}\ndefault: {sources: [s3://data/shared], outputs: [s3://results/shared]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Locations("beta"); !reflect.DeepEqual(got, Locations{Sources: []string{"s3://data/shared"}, Outputs: []string{"s3://results/shared"}}) {
		t.Errorf("beta with an explicit default: %+v", got)
	}
	if got, _ := c.Locations("alpha"); len(got.Outputs) != 0 {
		t.Errorf("alpha lists its own locations, yet gets the default's outputs: %+v", got)
	}
	if _, ok := (*Config)(nil).Locations("alpha"); ok {
		t.Error("no tenants file: per-tenant locations reported")
	}
	for _, bad := range []string{"relative/dir", "ftp://x/y", "s3:///nobucket"} {
		if _, err := Parse([]byte("tenants:\n  alpha: {outputs: [\"" + bad + "\"]}\n")); err == nil || !strings.Contains(err.Error(), "alpha") {
			t.Errorf("location %q: %v, want an error naming the tenant", bad, err)
		}
	}
}
