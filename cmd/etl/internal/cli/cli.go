// Package cli is the etl command: it parses configuration, wires the stages
// and runs them. cmd/etl/main.go only calls Run.
package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Exit codes: a contract with cron and operators' scripts.
const (
	ExitOK      = 0 // every row loaded, no_data, duplicate or already loaded
	ExitAborted = 1 // fatal API answer, interrupted, output unwritable, locked
	ExitUsage   = 2 // bad flags or combination
	ExitPartial = 3 // finished, but some rows failed or were rejected
)

// Env is the process environment the command runs in (tests substitute it).
type Env struct {
	Stdout, Stderr io.Writer
	// StderrIsTerminal decides console logs and the progress bar in auto mode.
	StderrIsTerminal bool
}

const usageText = `etl: enrich Huawei CC-CMS call IDs with querybasiccallinfo.

Usage:
  etl run --input csv:FILE|queue --output parquet:DIR|postgres [flags]
  etl demo [--out DIR]             run the job against a built-in simulator
  etl ping [flags]                 check address, TLS and signature
  etl migrate [--database-url URL] apply the Postgres schema (idempotent)
  etl enqueue --input csv:FILE     load a CSV into cms.call_queue
  etl requeue --failed [--result-code CODE]  put failed queue rows back to pending
  etl version

Run 'etl COMMAND --help' for the flags of a command.
Exit codes: 0 ok, 1 aborted, 2 usage error, 3 finished with failed or rejected rows.
`

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usageText)
		return ExitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, env)
	case "demo":
		return cmdDemo(ctx, rest, env)
	case "ping":
		return cmdPing(ctx, rest, env)
	case "migrate":
		err = cmdMigrate(ctx, rest, env)
	case "enqueue":
		err = cmdEnqueue(ctx, rest, env)
	case "requeue":
		err = cmdRequeue(ctx, rest, env)
	case "version", "--version":
		fmt.Fprintln(env.Stdout, "etl", Version())
		return ExitOK
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usageText)
		return ExitOK
	default:
		fmt.Fprintf(env.Stderr, "etl: unknown command %q\n\n%s", cmd, usageText)
		return ExitUsage
	}
	return exitFor(err, env)
}

func exitFor(err error, env Env) int {
	var ue *UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errHelp):
		return ExitOK
	case errors.Is(err, errPartial):
		fmt.Fprintf(env.Stderr, "etl: %v\n", err)
		return ExitPartial
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "etl: %v\n", err)
		return ExitUsage
	default:
		fmt.Fprintf(env.Stderr, "etl: %v\n", err)
		return ExitAborted
	}
}

// parse parses flags; -h prints the flags and yields errHelp.
func parse(fs *flag.FlagSet, args []string, env Env) error {
	fs.SetOutput(env.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return &UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: etl %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// NewLogger builds the zerolog logger for the configured format and level.
func NewLogger(c *Config, env Env) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	var w io.Writer = env.Stderr
	if c.LogFormat == "console" || (c.LogFormat == "auto" && env.StderrIsTerminal) {
		w = zerolog.ConsoleWriter{Out: env.Stderr, TimeFormat: time.TimeOnly, NoColor: !env.StderrIsTerminal}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// Version is the module version baked in by the Go toolchain, or a VCS hint.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	if v == "" {
		v = "devel"
	}
	return v
}

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Run is the process entry point used by cmd/etl.
func Run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal after the first means "now": skip the grace period.
		<-ctx.Done()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM) // before stop(), so no signal hits the default action
		stop()
		<-sig
		fmt.Fprintln(os.Stderr, "etl: second signal, exiting without waiting")
		os.Exit(ExitAborted)
	}()
	env := Env{Stdout: os.Stdout, Stderr: os.Stderr, StderrIsTerminal: term.IsTerminal(int(os.Stderr.Fd()))}
	return Main(ctx, os.Args[1:], env)
}
