// Package cli is the etl command: it parses configuration, wires the stages
// and runs them. cmd/etl/main.go only calls Run.
package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/migrations"
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
	// StderrIsTerminal decides console logs, one-line refusals, the human
	// summary and the progress bar in auto mode.
	StderrIsTerminal bool
	// Now is the clock that decides etl discover's window: which day is
	// yesterday, what CC-CMS still keeps, which slices have closed. nil is
	// time.Now; tests pin it, with the simulator's, away from midnight.
	Now func() time.Time
}

// now reads env's clock.
func (e Env) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

const usageText = `etl: enrich Huawei CC-CMS call IDs with querybasiccallinfo, and discover
finished calls (querycalls) and their CDRs (querycalldetailbyid).

  Finished calls, nightly: etl discover --enqueue cdr, then etl run --input queue --query cdr
                           (contrib/cron/cms-etl-nightly)
  Calls in progress, live: etl run --input queue --follow (contrib/systemd/cms-etl-follow.service)
  (README.md, "Which one do I need?")

Usage:
  etl run --input csv:FILE|queue --output parquet:DIR|postgres [--query basic|cdr] [flags]
                                   ask about each key: a call in progress (basic, the default)
                                   or a finished call's CDR (cdr)
      --input queue --follow [--track-every 5s] [--listen ADDR]
                                   keep enriching calls while they are live (until SIGTERM)
  etl discover --cc-id N --vdn 25[,26] --output postgres|parquet:DIR [--enqueue cdr] [flags]
                                   list a day's finished calls (default: yesterday); with
                                   --enqueue cdr, queue them for their CDR
  etl demo [--input FILE] [--out DIR]  run the job against a built-in simulator
  etl demo --follow [--for D]      the live demo: generated calls, a follower tracking them
  etl ping [flags]                 check address, TLS and signature
  etl migrate [--database-url URL] apply the Postgres schema (idempotent)
  etl enqueue --input csv:FILE [--query basic|cdr]  load a CSV into cms.call_queue
  etl requeue --failed|--no-data [--result-code CODE]  put failed or no_data queue rows back to pending
  etl version

Run 'etl COMMAND --help' for the flags of a command.
Exit codes: 0 ok, 1 aborted, 2 usage error, 3 finished with failed or rejected rows.
`

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	// One writer for everything on stderr, so that log lines and refusals
	// never tear the progress bar.
	if _, ok := env.Stderr.(*termWriter); !ok {
		env.Stderr = &termWriter{w: env.Stderr}
	}
	if len(args) == 0 {
		rep := newReporter(env, "", args)
		if !rep.json {
			fmt.Fprint(env.Stderr, usageText)
			return ExitUsage
		}
		return rep.exit(&UsageError{Err: errors.New("no command given"), Hint: "see `etl --help`"})
	}
	cmd, rest := args[0], args[1:]
	rep := newReporter(env, cmd, rest)
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, env, rep)
	case "discover":
		return cmdDiscover(ctx, rest, env, rep)
	case "demo":
		return cmdDemo(ctx, rest, env, rep)
	case "ping":
		return cmdPing(ctx, rest, env, rep)
	case "migrate":
		return rep.exit(cmdMigrate(ctx, rest, env))
	case "enqueue":
		return rep.exit(cmdEnqueue(ctx, rest, env))
	case "requeue":
		return rep.exit(cmdRequeue(ctx, rest, env))
	case "version", "--version":
		fmt.Fprintln(env.Stdout, "etl", Version())
		return ExitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(env.Stdout, usageText)
		return ExitOK
	}
	rep = newReporter(env, "", rest)
	hint := "see `etl --help`"
	if near := nearest(strings.TrimLeft(cmd, "-"), commands); near != "" {
		hint = "did you mean `etl " + near + "`? " + hint
	}
	return rep.exit(&UsageError{Err: fmt.Errorf("unknown command %q", cmd), Hint: hint})
}

var commands = []string{"run", "discover", "demo", "ping", "migrate", "enqueue", "requeue", "version", "help"}

// reporter reports why a command did not do what it was asked, the same way
// for every command: on a terminal one line, "etl CMD: what is wrong: what
// to do"; otherwise (cron, systemd, a pipe) one JSON event, so that stderr
// off a terminal carries JSON lines only.
type reporter struct {
	env  Env
	cmd  string // "" before a command is known
	json bool
	log  zerolog.Logger // JSON events go here
}

// newReporter takes the style from --log-format in args, read before the
// flags are parsed so that a flag error is reported in the same style.
func newReporter(env Env, cmd string, args []string) reporter {
	return reporter{env: env, cmd: cmd, json: jsonLogs(flagValue(args, "log-format", "auto"), env),
		log: zerolog.New(env.Stderr).With().Timestamp().Logger()}
}

// jsonLogs is whether logs are JSON: --log-format json, or auto off a terminal.
func jsonLogs(format string, env Env) bool {
	return format == "json" || (format != "console" && !env.StderrIsTerminal)
}

// flagValue is the value of --name in args (also -name, --name=v), or def.
func flagValue(args []string, name, def string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			def = v
		} else if a == name && i+1 < len(args) {
			def = args[i+1]
		}
	}
	return def
}

// exit reports err (unless it needs no report) and returns its exit code.
func (r reporter) exit(err error) int {
	code := exitCode(err)
	if err != nil && !errors.Is(err, errHelp) && !errors.Is(err, errPartial) {
		r.report(err, code)
	}
	return code
}

func exitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return ExitOK
	case errors.Is(err, errPartial):
		return ExitPartial
	case errors.As(err, &ue):
		return ExitUsage
	default:
		return ExitAborted
	}
}

// report writes one refusal: a line on a terminal, a JSON event otherwise.
func (r reporter) report(err error, code int) {
	msg, hint := oneLine(err.Error()), r.hint(err)
	if r.json {
		ev := r.log.Error().Str("command", r.name()).Str("error", msg).Int("exit_code", code)
		if hint != "" {
			ev = ev.Str("hint", hint)
		}
		var fe *failedError
		if errors.As(err, &fe) {
			ev.Msg(r.name() + " failed")
		} else {
			ev.Msg(r.name() + " not started")
		}
		return
	}
	prefix := "etl"
	if r.cmd != "" {
		prefix += " " + r.cmd
	}
	if hint != "" {
		msg += ": " + hint
	}
	fmt.Fprintf(r.env.Stderr, "%s: %s\n", prefix, msg)
}

func (r reporter) name() string {
	if r.cmd == "" {
		return "etl"
	}
	return r.cmd
}

// hint is what the operator can do about err ("" when nothing useful).
func (r reporter) hint(err error) string {
	var he *hintError
	var ue *UsageError
	var ve *migrations.VersionError
	switch {
	case errors.As(err, &he):
		return he.hint
	case errors.As(err, &ue) && ue.Hint != "":
		return ue.Hint
	case errors.As(err, &ve) && ve.Older():
		return "run `etl migrate`"
	case errors.As(err, &ve):
		return "use the etl version that migrated this database, or a newer one"
	case errors.Is(err, parquet.ErrLocked):
		return "another etl run is writing there; this one did not start, so runs never overlap"
	case ue != nil:
		if r.cmd == "" {
			return "see `etl --help`"
		}
		return "see `etl " + r.cmd + " --help`"
	}
	return ""
}

// hintError carries what to do about err.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }

// failedError marks an error of a command that had started its work: it is
// reported as "CMD failed" rather than "CMD not started".
type failedError struct{ err error }

func (e *failedError) Error() string { return e.err.Error() }
func (e *failedError) Unwrap() error { return e.err }

func failed(err error) error { return &failedError{err: err} }

// oneLine keeps a refusal on one line whatever an error holds.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// NewLogger builds the zerolog logger for the configured format and level.
func NewLogger(c *Config, env Env) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	var w io.Writer = env.Stderr
	if !jsonLogs(c.LogFormat, env) {
		w = zerolog.ConsoleWriter{Out: env.Stderr, TimeFormat: time.TimeOnly, NoColor: !env.StderrIsTerminal}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// version is stamped at build time by make build and make install:
// -ldflags "-X github.com/cmsetl/cms-etl/cmd/etl/internal/cli.version=$(git describe --tags --always --dirty)".
var version string

// Version is the stamped version; else what the Go toolchain recorded: the
// module version (go install ...@version) or the commit it was built from
// (go build or go install in a checkout), marked dirty with local changes.
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	// Since Go 1.24 a checkout's version already names the commit.
	if len(rev) >= 12 && !strings.Contains(v, rev[:12]) {
		v += "+" + rev[:12]
		if dirty {
			v += ".dirty"
		}
	}
	return v
}

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Run is the process entry point used by cmd/etl.
func Run() int { return run(nil) }

// run is Run with the clock of Env.Now (nil: time.Now).
func run(now func() time.Time) int {
	env := Env{Stdout: os.Stdout, Stderr: &termWriter{w: os.Stderr}, StderrIsTerminal: term.IsTerminal(int(os.Stderr.Fd())), Now: now}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal after the first means "now": skip the grace period.
		<-ctx.Done()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM) // before stop(), so no signal hits the default action
		stop()
		<-sig
		cmd := ""
		if len(os.Args) > 1 {
			cmd = os.Args[1]
		}
		newReporter(env, cmd, os.Args[1:]).report(failed(errors.New("second signal: exiting without waiting for requests in flight")), ExitAborted)
		os.Exit(ExitAborted)
	}()
	return Main(ctx, os.Args[1:], env)
}
