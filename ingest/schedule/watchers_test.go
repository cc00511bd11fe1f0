package schedule

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// The supervisor starts a watcher per entry, restarts one whose entry
// changed, and stops one whose entry went.
func TestWatchersFollowTheEntries(t *testing.T) {
	var mu sync.Mutex
	starts := map[string]int{}
	running := map[string]bool{}
	ws := newWatchers(context.Background(), func(ctx context.Context, w Watch) error {
		mu.Lock()
		starts[w.Name]++
		running[w.Name] = true
		mu.Unlock()
		<-ctx.Done()
		mu.Lock()
		running[w.Name] = false
		mu.Unlock()
		return nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer ws.stop()
	check := func(what string, wantStarts map[string]int, wantRunning map[string]bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			ok := true
			for n, s := range wantStarts {
				ok = ok && starts[n] == s && running[n] == wantRunning[n]
			}
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: starts %v, running %v; want %v, %v", what, starts, running, wantStarts, wantRunning)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	a := Watch{Name: "a", Settings: WatchSettings{Timezone: "UTC"}}
	b := Watch{Name: "b", Settings: WatchSettings{Timezone: "UTC"}}
	ws.sync([]Watch{a, b})
	check("first sync", map[string]int{"a": 1, "b": 1}, map[string]bool{"a": true, "b": true})
	ws.sync([]Watch{a, b})
	check("same entries", map[string]int{"a": 1, "b": 1}, map[string]bool{"a": true, "b": true})
	a.Settings.RollEvery = 3
	ws.sync([]Watch{a})
	check("a changed, b gone", map[string]int{"a": 2, "b": 1}, map[string]bool{"a": true, "b": false})
}
