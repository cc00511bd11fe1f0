package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves reg in Prometheus' exposition format. A collector that
// fails does not hide the others.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ReadyTimeout bounds the Redis ping of /readyz.
const ReadyTimeout = 2 * time.Second

// HealthHandlers returns /healthz, which answers 200 while the process
// serves HTTP, and /readyz, which answers 200 only when ping (a Redis PING)
// succeeds within ReadyTimeout, else 503. Neither shows the ping's error,
// which may name hosts; it is the caller's to log.
func HealthHandlers(ping func(ctx context.Context) error) (healthz, readyz http.Handler) {
	healthz = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
	readyz = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		defer cancel()
		if ping == nil || ping(ctx) != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "redis not reachable")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return healthz, readyz
}

// Mux serves /metrics (reg), /healthz and /readyz: a worker's
// --metrics-listen endpoint.
func Mux(reg *prometheus.Registry, ping func(ctx context.Context) error) *http.ServeMux {
	mux := http.NewServeMux()
	healthz, readyz := HealthHandlers(ping)
	mux.Handle("GET /metrics", Handler(reg))
	mux.Handle("GET /healthz", healthz)
	mux.Handle("GET /readyz", readyz)
	return mux
}

// ShutdownTimeout is how long Serve waits for open requests once ctx ends.
const ShutdownTimeout = 5 * time.Second

// Timeouts bound how long a connection may take to send a request and
// how long it may sit idle. The zero value of a field means its default.
type Timeouts struct {
	// ReadHeader is how long a client has to send a request's header.
	// Zero means 10s.
	ReadHeader time.Duration
	// Read is how long a client has to send a whole request, header and
	// body (the API takes bodies up to 1 MiB: time enough for a slow
	// link). Zero means 2m.
	Read time.Duration
	// Idle is how long a kept-alive connection waits for its next request.
	// Zero means 2m.
	Idle time.Duration
	// Write bounds the time from the end of a request's header to the end
	// of its response. Zero means none, and that is the default on purpose:
	// a submit that lists thousands of objects, asynqmon's pages and
	// downloads may rightly take minutes, and a write deadline would cut
	// them off mid-answer; a stalled reader is still dropped by the
	// kernel's TCP timeouts, and handlers that want a bound set their own
	// with http.ResponseController.
	Write time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	t.ReadHeader = cmp.Or(t.ReadHeader, 10*time.Second)
	t.Read = cmp.Or(t.Read, 2*time.Minute)
	t.Idle = cmp.Or(t.Idle, 2*time.Minute)
	return t
}

// Serve serves h on l until ctx ends, then shuts down gracefully (open
// requests get ShutdownTimeout), with the default Timeouts. It returns nil
// after a shutdown caused by ctx, and the server's error otherwise. Every
// HTTP server of llamapipe goes through Serve or ServeTimeouts.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	return ServeTimeouts(ctx, l, h, log, Timeouts{})
}

// ServeTimeouts is Serve with the given Timeouts (zero fields: defaults).
func ServeTimeouts(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger, t Timeouts) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t = t.withDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		IdleTimeout:       t.Idle,
		WriteTimeout:      t.Write,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shut down %s: %w", l.Addr(), err)
	}
	return nil
}
