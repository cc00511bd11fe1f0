package dashboard

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llamapipe/llamapipe/jobs"
)

// TestETAFollowsRecentProgress: 7 items ended in the batch's first 10
// minutes (0.7 a minute since it was created); then 2 end in the next
// minute. The page's rate and ETA follow the last minutes (2 a minute, 1
// item left: 30s), not the average since creation (0.8 a minute: 1m15s).
func TestETAFollowsRecentProgress(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f := newFixture(t, func(c *Config) { c.Now = func() time.Time { return now } })
	if res, body := f.do(t, "GET", "/", "bearer", nil); res.StatusCode != 200 || !strings.Contains(body, `<td class="eta">4m</td>`) {
		t.Fatalf("first view: %d, want the ETA since creation (4m)", res.StatusCode)
	}
	for i := 7; i < 9; i++ {
		e := jobs.Entry{Item: fmt.Sprintf("item-%02d", i), Source: fmt.Sprintf("s3://acme/inbox/f%02d.pdf", i), Kind: jobs.KindDocument, Status: jobs.StatusDone}
		if _, _, err := f.tracker.Record(context.Background(), f.batch, e); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(time.Minute)
	res, body := f.do(t, "GET", "/", "bearer", nil)
	if res.StatusCode != 200 || !strings.Contains(body, `<td class="eta">30s</td>`) {
		t.Errorf("after a minute at 2 items a minute, the ETA is not 30s:\n%s", body)
	}
}
