package schedule

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// watchers runs the watchers of the schedules' watch entries: started when
// an entry appears, restarted when it changes, stopped when it goes.
type watchers struct {
	ctx     context.Context // the scheduler's: ends every watcher
	start   func(ctx context.Context, w Watch) error
	log     *slog.Logger
	mu      sync.Mutex
	running map[string]*runningWatch
	wg      sync.WaitGroup
}

type runningWatch struct {
	key    string
	cancel context.CancelFunc
	done   chan struct{}
}

func newWatchers(ctx context.Context, start func(ctx context.Context, w Watch) error, log *slog.Logger) *watchers {
	return &watchers{ctx: ctx, start: start, log: log, running: map[string]*runningWatch{}}
}

// sync makes the running watchers those of specs.
func (ws *watchers) sync(specs []Watch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	want := map[string]Watch{}
	for _, s := range specs {
		want[s.Name] = s
	}
	for name, r := range ws.running {
		if s, ok := want[name]; !ok || s.key() != r.key {
			r.cancel()
			<-r.done
			delete(ws.running, name)
			ws.log.Info("watch stopped", "watch", name)
		}
	}
	for name, s := range want {
		if ws.running[name] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(ws.ctx)
		r := &runningWatch{key: s.key(), cancel: cancel, done: make(chan struct{})}
		ws.running[name] = r
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			defer close(r.done)
			// A watcher that fails (its inbox unreachable) is tried again.
			for ctx.Err() == nil {
				if err := ws.start(ctx, s); err != nil && ctx.Err() == nil {
					ws.log.Error("watch failed: restarting in 30s", "watch", s.Name, "error", err.Error())
					select {
					case <-ctx.Done():
					case <-time.After(30 * time.Second):
					}
				}
			}
		}()
		ws.log.Info("watch started", "watch", name)
	}
}

// stop stops every watcher and waits for them.
func (ws *watchers) stop() {
	ws.mu.Lock()
	for _, r := range ws.running {
		r.cancel()
	}
	ws.mu.Unlock()
	ws.wg.Wait()
}
