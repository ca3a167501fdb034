package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/migrations"
)

func cmdPing(ctx context.Context, args []string, env Env, rep reporter) int {
	var c Config
	fs := newFlagSet("ping", "ping [--api-url URL] [--ak AK] [--ca-file PEM] [flags]")
	c.registerAPI(fs)
	if err := parse(fs, args, env); err != nil {
		return rep.exit(err)
	}
	if err := c.applyEnv(fs); err != nil {
		return rep.exit(err)
	}
	if err := c.validateAPI(); err != nil {
		return rep.exit(err)
	}
	log := NewLogger(&c, env)
	c.logWarnings(log)
	client, err := newClient(&c, log, nil, nil)
	if err != nil {
		return rep.exit(err)
	}
	defer client.Close()
	res := client.Ping(ctx)
	fmt.Fprintln(env.Stdout, res.String())
	if !res.OK() {
		return ExitAborted
	}
	return ExitOK
}

func cmdMigrate(ctx context.Context, args []string, env Env) error {
	var c Config
	fs := newFlagSet("migrate", "migrate [--database-url URL]")
	c.registerDB(fs)
	c.registerLog(fs)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	if err := c.applyEnv(fs); err != nil {
		return err
	}
	if err := c.requireDB(""); err != nil {
		return err
	}
	c.logWarnings(NewLogger(&c, env))
	db, err := openDB(ctx, c.DatabaseURL, 1)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Release()
	// One connection: tern's advisory lock belongs to the session.
	rep, err := migrations.Apply(ctx, conn.Conn())
	if err != nil {
		return failed(fmt.Errorf("migrate: %w", err))
	}
	if len(rep.Applied) == 0 {
		fmt.Fprintf(env.Stdout, "schema cms is up to date (version %d); nothing applied\n", rep.To)
		return nil
	}
	fmt.Fprintf(env.Stdout, "schema cms migrated from version %d to %d:\n", rep.From, rep.To)
	for _, name := range rep.Applied {
		fmt.Fprintf(env.Stdout, "  applied %s\n", name)
	}
	return nil
}

func cmdEnqueue(ctx context.Context, args []string, env Env) error {
	var c Config
	fs := newFlagSet("enqueue", "enqueue --input csv:FILE [--cc-id N] [--vdn N] [--query basic|cdr [--direction in|out]] [--database-url URL]")
	fs.in(groupInput)
	fs.StringVar(&c.Input, "input", "", "CSV file to load into cms.call_queue: csv:FILE")
	fs.IntVar(&c.DefaultCCID, "cc-id", 0, "ccId for rows without one")
	fs.IntVar(&c.DefaultVDN, "vdn", 0, "vdn for rows without one")
	c.registerEnqueueQuery(fs)
	flushEvery := registerEnqueueFlush(fs)
	c.registerDB(fs)
	c.registerLog(fs)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	if err := c.applyEnv(fs); err != nil {
		return err
	}
	if c.CSVPath() == "" {
		return fs.usage(errors.New("--input csv:FILE is required"))
	}
	if err := c.validateQuery(); err != nil {
		return err
	}
	if *flushEvery <= 0 {
		return fs.usage(fmt.Errorf("--flush-interval %s: must be positive", *flushEvery))
	}
	if err := c.requireDB(""); err != nil {
		return err
	}
	log := NewLogger(&c, env)
	c.logWarnings(log)
	r, err := csvsource.Open(c.csvConfig())
	if err != nil {
		return fs.usage(fmt.Errorf("--input: %w", err))
	}
	defer r.Close()
	db, err := openWarehouse(ctx, c.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	var rejected int64
	entries := c.enqueueEntries(r, func(it csvsource.Item) {
		rejected++
		log.Warn().Str("file", r.Path()).Int64("line", it.Line).Str("reason", it.Err.Error()).Msg("row rejected")
	})
	rep, err := queue.EnqueueStream(ctx, db, c.queueQuery(), entries, *flushEvery, enqueueProgress(log))
	if err != nil {
		return failed(fmt.Errorf("enqueue %s: %w", r.Path(), err))
	}
	fmt.Fprintf(env.Stdout, "enqueued %s: %d rows read, %d inserted, %d already queued, %d rejected\n",
		r.Path(), rep.Read+rejected, rep.Inserted, rep.Duplicates, rejected)
	if rejected > 0 {
		return errPartial
	}
	return nil
}

// errPartial makes a command exit 3 after it already reported why.
var errPartial = errors.New("some rows were rejected")

func cmdRequeue(ctx context.Context, args []string, env Env) error {
	var c Config
	var failedRows, noDataRows bool
	var code, query string
	fs := newFlagSet("requeue", "requeue --failed|--no-data [--query basic|cdr] [--result-code CODE] [--database-url URL]")
	fs.in(groupInput)
	fs.BoolVar(&failedRows, "failed", false, "put rows that ended failed back to pending")
	fs.BoolVar(&noDataRows, "no-data", false, "put rows that ended no_data back to pending")
	fs.StringVar(&code, "result-code", "", "only rows whose last result code is this, e.g. 0100001")
	fs.StringVar(&query, "query", "", "only rows queued for `basic|cdr` (default: both)")
	c.registerDB(fs)
	c.registerLog(fs)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	if err := c.applyEnv(fs); err != nil {
		return err
	}
	var statuses []string
	if failedRows {
		statuses = append(statuses, queue.StatusFailed)
	}
	if noDataRows {
		statuses = append(statuses, queue.StatusNoData)
	}
	if len(statuses) == 0 {
		return fs.usage(errors.New("--failed or --no-data is required (the rows that ended that way are requeued)"))
	}
	if query != "" && queue.CheckQuery(query) != nil {
		return fs.usage(fmt.Errorf("--query %q: want basic or cdr", query))
	}
	if err := c.requireDB(""); err != nil {
		return err
	}
	c.logWarnings(NewLogger(&c, env))
	db, err := openWarehouse(ctx, c.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	q, err := queue.New(queue.Config{Pool: db, Owner: "requeue"})
	if err != nil {
		return err
	}
	n, err := q.Requeue(ctx, queue.RequeueFilter{Statuses: statuses, ResultCode: code, Query: query})
	if err != nil {
		return failed(fmt.Errorf("requeue: %w", err))
	}
	of := ""
	if query != "" {
		of = " " + query
	}
	fmt.Fprintf(env.Stdout, "requeued %d%s %s rows\n", n, of, strings.Join(statuses, " and "))
	return nil
}

// cmdDemo runs the whole job against the built-in simulator: no external
// service, no credentials. Its input holds bad rows and the simulator fails
// some calls on purpose, so rejected and failed rows are what a working demo
// shows: it exits 0 when every row ended as planned and 1 when the demo
// itself broke (the run aborted, or an outcome differs from the plan).
func cmdDemo(ctx context.Context, args []string, env Env, rep reporter) int {
	var c Config
	var out string
	fs := newFlagSet("demo", "demo [--input FILE] [--out DIR] [flags] | demo --follow [--for D] [flags]")
	fs.in(groupInput)
	fs.StringVar(&c.Input, "input", "testdata/calls.csv", "CSV of call IDs")
	fs.in(groupOutput)
	fs.StringVar(&out, "out", "demo-out", "Parquet output directory")
	fs.in(groupRate)
	fs.Float64Var(&c.Rate, "rate", 50, "requests per second")
	live := registerDemoFollow(fs)
	c.registerReport(fs)
	c.registerLog(fs)
	// The demo is watched: its summary goes to stdout unless asked otherwise.
	if f := fs.Lookup("summary"); f != nil {
		f.DefValue = "text"
		_ = f.Value.Set("text")
	}
	if err := parse(fs, args, env); err != nil {
		return rep.exit(err)
	}
	if err := validateLog(&c); err != nil {
		return rep.exit(err)
	}
	if err := validateReport(&c); err != nil {
		return rep.exit(err)
	}
	if live.follow {
		return runDemoFollow(ctx, env, rep, c, live, NewLogger(&c, env))
	}
	if _, err := os.Stat(c.Input); err != nil {
		return rep.exit(&UsageError{Err: fmt.Errorf("--input: %w", err), Hint: "run the demo from the repository root, or pass --input FILE"})
	}
	log := NewLogger(&c, env)
	creds := authv2.Credentials{AK: "demoAK", SK: "demoSK"}
	certDir, err := os.MkdirTemp("", "cmssim-demo")
	if err != nil {
		return rep.exit(err)
	}
	defer os.RemoveAll(certDir)
	simCfg := cmssim.Config{
		TLS: true, CertFile: filepath.Join(certDir, "ca.pem"), Credentials: creds,
		Latency: 15 * time.Millisecond, LatencyJitter: 10 * time.Millisecond,
		NoDataShare: 0.05, PermanentShare: 0.02, TransientShare: 0.05, TransientAttempts: 1,
		TransientKinds: []string{"drop", "truncated", "0100001"}, Seed: 1, Logger: log.Level(zerolog.WarnLevel),
	}
	plan, err := demoPlan(c.Input, simCfg)
	if err != nil {
		return rep.exit(fs.usage(fmt.Errorf("--input: %w", err)))
	}
	sim, err := cmssim.Start(ctx, simCfg)
	if err != nil {
		return rep.exit(fmt.Errorf("start simulator: %w", err))
	}
	defer sim.Close()
	log.Info().Str("url", sim.URL()).Msg("simulator started (self-signed TLS, demo credentials)")

	// Every setting the demo does not choose is etl run's default.
	demo := c
	c = Config{}
	c.registerRun(newFlagSet("run", ""))
	c.Input, c.Outputs = "csv:"+demo.Input, []string{"parquet:" + out}
	c.APIURL, c.AK, c.sk, c.CAFile = sim.URL(), creds.AK, creds.SK, sim.CAFile()
	c.Rate, c.RequestTimeout, c.Grace = demo.Rate, 5*time.Second, 5*time.Second
	c.LogFormat, c.LogLevel, c.MetricsFile = demo.LogFormat, demo.LogLevel, demo.MetricsFile
	c.Progress, c.Summary = demo.Progress, demo.Summary
	if err := c.validateRun(); err != nil {
		return rep.exit(err)
	}
	code, sum := runJob(ctx, &c, env, rep)
	if sum == nil {
		return code // not started: already reported
	}
	if err := plan.check(sum); err != nil {
		return rep.exit(failed(err))
	}
	w := env.Stdout
	if n := sum.Counts[outcome.Rejected] + sum.Counts[outcome.Failed]; n > 0 {
		fmt.Fprintf(w, "\nThe demo worked: its %d rejected and %d failed rows are part of the demonstration (bad input lines, calls the simulator fails on purpose); see %s.\n",
			sum.Counts[outcome.Rejected], sum.Counts[outcome.Failed], filepath.Join(out, "_rejects", c.RunID+".csv"))
	} else {
		fmt.Fprintln(w, "\nThe demo worked: every row ended as planned.")
	}
	fmt.Fprintf(w, "Parquet files are under %s/. Query them with DuckDB (see README.md, \"Querying the Parquet output\"):\n"+
		"  duckdb -c \"SELECT media_type_label, count(*) FROM read_parquet('%s/*/*.parquet', hive_partitioning=true) GROUP BY 1 ORDER BY 2 DESC\"\n",
		out, out)
	return ExitOK
}

// outcomePlan is how many rows of the demo input must end in each outcome.
type outcomePlan map[outcome.Outcome]int64

// demoPlan reads the demo input and asks the simulator's plan how each of
// its calls ends: bad rows are rejected, repeats are duplicates, and every
// distinct key ends loaded, no_data or failed as the simulator was set up
// (its transient faults are retried away).
func demoPlan(path string, sim cmssim.Config) (outcomePlan, error) {
	r, err := csvsource.Open(csvsource.Config{Path: path})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	plan := outcomePlan{}
	seen := map[extract.Key]bool{}
	for key, err := range r.Keys(func(csvsource.Item) { plan[outcome.Rejected]++ }) {
		if err != nil {
			return nil, err
		}
		if seen[key] {
			plan[outcome.Duplicate]++
			continue
		}
		seen[key] = true
		switch cmssim.PlanFor(sim, key).Outcome {
		case cmssim.OutcomeNoData:
			plan[outcome.NoData]++
		case cmssim.OutcomePermanent:
			plan[outcome.Failed]++
		default:
			plan[outcome.Loaded]++
		}
	}
	return plan, nil
}

// check compares a run with the plan. Rows an earlier demo committed to the
// same directory are already_loaded instead of loaded.
func (p outcomePlan) check(s *Summary) error {
	if s.ExitCode == ExitAborted {
		return fmt.Errorf("the demo run aborted: %s", s.Error)
	}
	got := outcomePlan{}
	for _, o := range outcome.All {
		got[o] = s.Counts[o]
	}
	got[outcome.Loaded] += got[outcome.AlreadyLoaded]
	delete(got, outcome.AlreadyLoaded)
	var diffs []string
	for _, o := range outcome.All {
		if o != outcome.AlreadyLoaded && got[o] != p[o] {
			diffs = append(diffs, fmt.Sprintf("%s %d (want %d)", o, got[o], p[o]))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the demo did not end as its input is built to: %s", strings.Join(diffs, ", "))
	}
	return nil
}
