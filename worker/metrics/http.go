package metrics

import (
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

// Serve serves h on l until ctx ends, then shuts down gracefully (open
// requests get ShutdownTimeout). It returns nil after a shutdown caused by
// ctx, and the server's error otherwise.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
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
