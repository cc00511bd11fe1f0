package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/llamapipe/llamapipe/cmd/llamapipe/clix"
	"github.com/llamapipe/llamapipe/ingest"
	"github.com/llamapipe/llamapipe/storage"
)

// Exit codes (the table is clix's: --help and the README show it).
const (
	exitOK       = clix.ExitOK
	exitFailed   = clix.ExitFailed
	exitUsage    = clix.ExitUsage
	exitRefused  = clix.ExitRefused
	exitCanceled = clix.ExitCanceled
)

// exitError carries an exit code and a message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer clix.SetupTracing(ctx, stderr)()
	app := newApp(stdout, stderr)
	err := app.Run(ctx, args)
	say := func(msg string) { clix.SayError(stderr, app.String("log-format"), msg) }
	var ee *exitError
	var ue *clix.UsageError
	switch {
	case errors.As(err, &ue):
		say(ue.Msg)
		return exitUsage
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		if ee.msg != "" {
			say(ee.msg)
		}
		return ee.code
	case errors.Is(err, context.Canceled):
		say("interrupted")
		return exitCanceled
	case errors.Is(err, storage.ErrNotExist) && errors.As(err, new(*ingest.SourceError)):
		say(err.Error())
		return exitRefused
	default:
		say(err.Error())
		return exitFailed
	}
}

// usageIf makes err a usage error (exit status 2) when it is an E: a
// library's error for bad input.
func usageIf[E error](err error) error {
	var e E
	if errors.As(err, &e) {
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	return err
}

func newApp(stdout, stderr io.Writer) *cli.Command {
	app := &cli.Command{
		Name:  "llamapipe",
		Usage: "summarize documents and caption images with Llama 4, in batches, on Asynq",
		Description: "Every flag can also be set by the environment variable named in its help " +
			"(e.g. LLAMAPIPE_REDIS_URL). API keys are read from an environment variable or a file, never from a flag.\n\n" +
			clix.ExitCodesHelp() + "\n\nShell completion: llamapipe completion bash|zsh|fish|pwsh (see the README).",
		Version:               clix.ReadVersion().String(),
		Writer:                stdout,
		ErrWriter:             stderr,
		EnableShellCompletion: true,
		Suggest:               true,
		Flags:                 globalFlags(),
		OnUsageError: func(ctx context.Context, cmd *cli.Command, err error, isSubcommand bool) error {
			return &exitError{code: exitUsage, msg: err.Error()}
		},
		ExitErrHandler: func(context.Context, *cli.Command, error) {}, // run() prints errors
		Commands: []*cli.Command{
			runCommand(stdout, stderr),
			ingestCommand(stdout, stderr),
			workerCommand(stderr),
			statusCommand(stdout, stderr),
			planCommand(stdout, stderr),
			schedulerCommand(stderr),
			benchCommand(stdout, stderr),
			dashboardCommand(stdout, stderr),
			cancelCommand(stdout, stderr),
			retryCommand(stdout, stderr),
			serveCommand(stdout, stderr),
			watchCommand(stderr),
			clix.VersionCommand(stdout),
			clix.BatchesCommand(stdout, func(ctx context.Context, cmd *cli.Command) (clix.Lister, func(), error) {
				c, err := connect(ctx, cmd, false, stderr)
				if err != nil {
					return nil, nil, err
				}
				return c.tracker, c.Close, nil
			}),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Present() {
				return &exitError{code: exitUsage, msg: fmt.Sprintf("unknown command %q (see llamapipe --help)", cmd.Args().First())}
			}
			return cli.ShowRootCommandHelp(cmd)
		},
	}
	clix.UsageErrors(app, app.OnUsageError)
	return app
}

// env names the environment twin of a flag.
func env(name string) cli.ValueSourceChain { return cli.EnvVars("LLAMAPIPE_" + name) }

func globalFlags() []cli.Flag {
	return clix.Category("Redis, storage and logs", []cli.Flag{
		&cli.StringFlag{Name: "redis-url", Usage: "Redis for the queue and batch records: redis://[:password@]host:port/db, rediss:// (TLS), redis-sentinel://[:password@]host:port,...?master=NAME, redis-cluster://host:port,... (rediss-cluster:// for TLS); run: empty starts a private redis-server", Sources: env("REDIS_URL")},
		&cli.StringFlag{Name: "s3-endpoint", Usage: "S3 endpoint URL for MinIO, R2 and other S3-compatible stores (empty: AWS)", Sources: env("S3_ENDPOINT")},
		&cli.StringFlag{Name: "s3-region", Usage: "S3 region (empty: from the AWS config, else us-east-1)", Sources: env("S3_REGION")},
		&cli.BoolFlag{Name: "s3-path-style", Usage: "use path-style S3 addressing (MinIO)", Sources: env("S3_PATH_STYLE")},
		&cli.StringFlag{Name: "log-format", Value: "auto", Usage: "log format: auto (text on a terminal, JSON otherwise), text or json", Sources: env("LOG_FORMAT")},
		&cli.StringFlag{Name: "log-level", Usage: "log level: debug, info, warn or error (default: info; error for run and bench, whose progress display says what matters)", Sources: env("LOG_LEVEL")},
	})
}

// newLogger builds the process logger on stderr (clix.NewLogger).
func newLogger(cmd *cli.Command, stderr io.Writer, defaultLevel slog.Level) (*slog.Logger, error) {
	return clix.NewLogger(stderr, cmd.String("log-format"), cmd.String("log-level"), defaultLevel)
}
