package series

import (
	"strconv"
	"testing"
	"time"
)

func TestParseOrdersMinutesAndIgnoresStrangeFields(t *testing.T) {
	m := time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC).Unix() / 60
	key := func(off int64, f string) string { return strconv.FormatInt(m+off, 10) + ":" + f }
	h := map[string]string{
		key(2, "done"): "4", key(2, "failed"): "1", key(2, "model_calls"): "5", key(2, "model_ms"): "7500", key(2, "model_errors"): "1",
		key(2, "calls"): "9", key(2, "ms"): "1", key(2, "cost"): "0.125",
		key(0, "skipped"): "2", key(0, "cancelled"): "1",
		key(0, "unknown"): "9", "garbage": "1", "x:done": "3",
	}
	bs := Parse(h)
	if len(bs) != 2 || !bs[0].Minute.Before(bs[1].Minute) {
		t.Fatalf("buckets %+v, want minutes 0 and 2 in order", bs)
	}
	if b := bs[0]; b.Skipped != 2 || b.Cancelled != 1 || b.Ended() != 3 || b.ModelCalls != 0 {
		t.Errorf("minute 0: %+v", b)
	}
	if _, ok := bs[0].MeanModelMS(); ok {
		t.Error("minute 0 has a mean without calls")
	}
	b := bs[1]
	if mean, ok := b.MeanModelMS(); b.Done != 4 || b.Failed != 1 || b.Cost != 0.125 || b.ModelErrors != 1 || !ok || mean != 1500 {
		t.Errorf("minute 2: %+v mean %v", b, mean)
	}
	if got := bs[1].Minute.Sub(bs[0].Minute); got != 2*time.Minute {
		t.Errorf("minutes %v apart, want 2m", got)
	}
}
