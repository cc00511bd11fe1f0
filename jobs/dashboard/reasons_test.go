package dashboard

import (
	"fmt"
	"testing"

	"github.com/llamapipe/llamapipe/jobs"
)

// A batch whose failures all have different reasons (each names its file)
// is grouped in bounded memory: maxReasons groups, the rest counted under
// "(other reasons)", and every failure counted once.
func TestReasonGroupsAreBounded(t *testing.T) {
	rg := newReasonGroups(jobs.StatusFailed)
	const n = maxReasons + 100
	for i := range n {
		rg.add(jobs.Entry{Item: fmt.Sprint(i), Source: fmt.Sprintf("/in/%d.pdf", i), Status: jobs.StatusFailed,
			Error: fmt.Sprintf("cannot read /in/%d.pdf", i)})
		rg.add(jobs.Entry{Item: fmt.Sprint("d", i), Status: jobs.StatusDone}) // not this status: ignored
	}
	gs := rg.groups()
	if len(gs) != maxReasons+1 {
		t.Fatalf("%d groups, want %d", len(gs), maxReasons+1)
	}
	total := 0
	for _, g := range gs {
		total += g.Count
		if len(g.Examples) > maxExamples {
			t.Errorf("group %q keeps %d examples", g.Reason, len(g.Examples))
		}
	}
	if total != n {
		t.Errorf("%d failures counted, want %d", total, n)
	}
	if gs[0].Reason != otherReasons || gs[0].Count != n-maxReasons {
		t.Errorf("first group %q × %d, want %q × %d", gs[0].Reason, gs[0].Count, otherReasons, n-maxReasons)
	}
}
