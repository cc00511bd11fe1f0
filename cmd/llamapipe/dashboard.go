package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/hibiken/asynq"
	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/jobs/dashboard"
	"github.com/llamapipe/llamapipe/worker/metrics"
)

// Environment variables holding the dashboard's secrets (read directly,
// never through a flag value).
const (
	envDashboardPassword = "LLAMAPIPE_DASHBOARD_PASSWORD"
	envDashboardToken    = "LLAMAPIPE_DASHBOARD_TOKEN"
)

func dashboardCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "dashboard",
		Usage: "serve the operators' dashboard: batches at /, asynqmon at /asynq, /metrics, /healthz, /readyz",
		Description: "Authentication is on by default: HTTP basic auth (--auth-user, and the password from " + envDashboardPassword +
			" or --auth-password-file) or bearer tokens (" + envDashboardToken + " or --auth-token-file, one per line): an admin, a viewer with --read-only. --dashboard-users gives logins roles (admin, viewer, tenant:NAME); --dashboard-api-tokens lets the API's tokens open their tenant's view. " +
			"Without credentials the dashboard only listens on a loopback address.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "address to serve on, HOST:PORT (a non-loopback address requires credentials)", Sources: env("DASHBOARD_LISTEN")},
			&cli.StringFlag{Name: "prometheus-url", Usage: "Prometheus that scrapes /metrics (http://host:9090): asynqmon draws its queue charts from it", Sources: env("DASHBOARD_PROMETHEUS_URL")},
			&cli.BoolFlag{Name: "read-only", Usage: "asynqmon only shows queues and tasks (no pause, retry or delete)", Sources: env("DASHBOARD_READ_ONLY")},
			&cli.StringFlag{Name: "auth-user", Usage: "user name for HTTP basic auth (the password comes from " + envDashboardPassword + " or --auth-password-file)", Sources: env("DASHBOARD_AUTH_USER")},
			&cli.StringFlag{Name: "auth-password-file", Usage: "file holding the basic-auth password (first line)", Sources: env("DASHBOARD_AUTH_PASSWORD_FILE")},
			&cli.StringFlag{Name: "auth-token-file", Usage: "file holding accepted bearer tokens, one per line", Sources: env("DASHBOARD_AUTH_TOKEN_FILE")},
			&cli.IntFlag{Name: "batches", Value: 50, Usage: "how many batches, newest first, the batch page lists", Sources: env("DASHBOARD_BATCHES")},
			&cli.StringSliceFlag{Name: "allow-host", Usage: "Host header (name or name:port) a dashboard without credentials also answers, besides localhost, 127.0.0.1 and [::1] with its port (repeatable; e.g. the name a local reverse proxy forwards)", Sources: env("DASHBOARD_ALLOW_HOST")},
			tenantsFlag(),
		}, clix.DashboardUserFlags()...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			log, err := newLogger(cmd, stderr, slog.LevelInfo)
			if err != nil {
				return err
			}
			auth, err := dashboard.LoadAuth(dashboard.AuthSources{User: cmd.String("auth-user"), PasswordFile: cmd.String("auth-password-file"),
				TokenFile: cmd.String("auth-token-file"), Password: os.Getenv(envDashboardPassword), Token: os.Getenv(envDashboardToken)})
			if err != nil {
				return &exitError{code: exitUsage, msg: err.Error()}
			}
			if auth.Users, err = clix.DashboardUsers(cmd); err != nil {
				return &exitError{code: exitUsage, msg: err.Error()}
			}
			addr := cmd.String("listen")
			if err := dashboard.CheckListen(addr, auth); err != nil {
				return &exitError{code: exitUsage, msg: err.Error()}
			}
			c, err := connect(ctx, cmd, false, stderr)
			if err != nil {
				return err
			}
			defer c.Close()
			budgets, err := openTenants(cmd, c, log)
			if err != nil {
				return err
			}
			cfg := dashboard.Config{
				Tenants:      budgets,
				Tracker:      c.tracker,
				RedisConnOpt: c.opt,
				ReadOnly:     cmd.Bool("read-only"), PrometheusURL: cmd.String("prometheus-url"),
				Auth:       auth,
				Anonymous:  !auth.Configured(), // loopback only: CheckListen passed
				AllowHosts: cmd.StringSlice("allow-host"),
				Logger:     log,
				Batches:    cmd.Int("batches"),
				Open:       opener(cmd),
			}
			closeMetrics, err := dashboardMetrics(&cfg, c.opt, func(ctx context.Context) error { return c.rdb.Ping(ctx).Err() }, log)
			if err != nil {
				return err
			}
			defer closeMetrics()
			h, err := dashboard.New(cfg)
			if err != nil {
				return err
			}
			defer h.Close()
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return &exitError{code: exitFailed, msg: fmt.Sprintf("dashboard: %v", err)}
			}
			log.Info("dashboard listening", "addr", l.Addr().String(), "read_only", cmd.Bool("read-only"),
				"basic_auth", auth.User != "", "bearer_tokens", len(auth.Tokens), "users", len(auth.Users), "anonymous", !auth.Configured())
			fmt.Fprintf(stdout, "dashboard on http://%s/\n", l.Addr())
			return metrics.Serve(ctx, l, h, log)
		},
	}
}

// dashboardMetrics gives the dashboard worker/metrics' /metrics (a registry
// with asynq's queue collector and the live-worker gauges), /healthz and
// /readyz (ping). The returned func closes the queue inspector.
func dashboardMetrics(cfg *dashboard.Config, opt asynq.RedisConnOpt, ping func(context.Context) error, log *slog.Logger) (func() error, error) {
	reg := metrics.NewRegistry()
	insp := asynq.NewInspector(opt)
	if err := metrics.RegisterQueueCollectors(reg, insp, log); err != nil {
		_ = insp.Close()
		return nil, fmt.Errorf("dashboard: queue metrics: %w", err)
	}
	cfg.Metrics = metrics.Handler(reg)
	cfg.Healthz, cfg.Readyz = metrics.HealthHandlers(ping)
	return insp.Close, nil
}

// metricsListenFlag is the worker's --metrics-listen flag (to be added to
// workerFlags).
func metricsListenFlag() cli.Flag {
	return &cli.StringFlag{Name: "metrics-listen", Usage: "serve /metrics, /healthz and /readyz on this address, HOST:PORT (empty: off; unauthenticated, keep it on a private network)", Sources: env("METRICS_LISTEN")}
}

// workerMetrics registers the worker's metrics and, when --metrics-listen
// is set, serves /metrics, /healthz and /readyz there until ctx ends. The
// returned *metrics.Metrics is never nil.
func workerMetrics(ctx context.Context, cmd *cli.Command, c *conn, log *slog.Logger) (*metrics.Metrics, error) {
	reg := metrics.NewRegistry()
	m := metrics.New(reg)
	addr := cmd.String("metrics-listen")
	if addr == "" {
		return m, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &exitError{code: exitFailed, msg: fmt.Sprintf("--metrics-listen: %v", err)}
	}
	log.Info("metrics listening", "addr", l.Addr().String())
	ping := func(ctx context.Context) error { return c.rdb.Ping(ctx).Err() }
	go func() {
		if err := metrics.Serve(ctx, l, metrics.Mux(reg, ping), log); err != nil {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	return m, nil
}
