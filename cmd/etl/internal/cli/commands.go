package cli

import (
	"context"
	"errors"
	"fmt"

	"flag"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/extract/cms/cmssim"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/migrations"
)

func cmdPing(ctx context.Context, args []string, env Env) int {
	var c Config
	fs := newFlagSet("ping", "ping [--api-url URL] [--ak AK] [--ca-file PEM] [flags]")
	c.registerAPI(fs)
	if err := parse(fs, args, env); err != nil {
		return exitFor(err, env)
	}
	if err := c.applyEnv(fs); err != nil {
		return exitFor(err, env)
	}
	if err := c.validateAPI(); err != nil {
		return exitFor(err, env)
	}
	log := NewLogger(&c, env)
	c.logWarnings(log)
	client, err := newClient(&c, log, nil, nil)
	if err != nil {
		return exitFor(err, env)
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
		return fmt.Errorf("migrate: %w", err)
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
	fs := newFlagSet("enqueue", "enqueue --input csv:FILE [--cc-id N] [--vdn N] [--database-url URL]")
	c.registerDB(fs)
	c.registerLog(fs)
	fs.StringVar(&c.Input, "input", "", "CSV file to load into cms.call_queue: csv:FILE")
	fs.IntVar(&c.DefaultCCID, "cc-id", 0, "ccId for rows without one")
	fs.IntVar(&c.DefaultVDN, "vdn", 0, "vdn for rows without one")
	if err := parse(fs, args, env); err != nil {
		return err
	}
	if err := c.applyEnv(fs); err != nil {
		return err
	}
	if c.CSVPath() == "" {
		return usagef("--input csv:FILE is required")
	}
	if err := c.requireDB(""); err != nil {
		return err
	}
	log := NewLogger(&c, env)
	c.logWarnings(log)
	r, err := csvsource.Open(c.csvConfig())
	if err != nil {
		return usagef("--input: %w", err)
	}
	defer r.Close()
	db, err := openDB(ctx, c.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	var rejected int64
	keys := validKeys(r, func(it csvsource.Item) {
		rejected++
		log.Warn().Str("file", r.Path()).Int64("line", it.Line).Str("reason", it.Err.Error()).Msg("row rejected")
	})
	rep, err := queue.Enqueue(ctx, db, keys)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", r.Path(), err)
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
	var failed bool
	var code string
	fs := newFlagSet("requeue", "requeue --failed [--result-code CODE] [--database-url URL]")
	c.registerDB(fs)
	c.registerLog(fs)
	fs.BoolVar(&failed, "failed", false, "put failed rows back to pending (required)")
	fs.StringVar(&code, "result-code", "", "only rows whose last result code is this, e.g. 0100001")
	if err := parse(fs, args, env); err != nil {
		return err
	}
	if err := c.applyEnv(fs); err != nil {
		return err
	}
	if !failed {
		return usagef("--failed is required (only failed rows can be requeued)")
	}
	if err := c.requireDB(""); err != nil {
		return err
	}
	c.logWarnings(NewLogger(&c, env))
	db, err := openDB(ctx, c.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	q, err := queue.New(queue.Config{Pool: db, Owner: "requeue"})
	if err != nil {
		return err
	}
	n, err := q.Requeue(ctx, code)
	if err != nil {
		return fmt.Errorf("requeue: %w", err)
	}
	fmt.Fprintf(env.Stdout, "requeued %d failed rows\n", n)
	return nil
}

// cmdDemo runs the whole job against the built-in simulator: no external
// service, no credentials.
func cmdDemo(ctx context.Context, args []string, env Env) int {
	var c Config
	var out string
	fs := newFlagSet("demo", "demo [--input FILE] [--out DIR]")
	fs.StringVar(&c.Input, "input", "testdata/calls.csv", "CSV of call IDs")
	fs.StringVar(&out, "out", "demo-out", "Parquet output directory")
	fs.Float64Var(&c.Rate, "rate", 50, "requests per second")
	fs.StringVar(&c.MetricsFile, "metrics-file", "", "also write metrics here")
	c.registerLog(fs)
	if err := parse(fs, args, env); err != nil {
		return exitFor(err, env)
	}
	if err := validateLog(&c); err != nil {
		return exitFor(err, env)
	}
	if _, err := os.Stat(c.Input); err != nil {
		return exitFor(usagef("--input: %v (run from the repository root, or pass --input)", err), env)
	}
	log := NewLogger(&c, env)
	creds := authv2.Credentials{AK: "demoAK", SK: "demoSK"}
	certDir, err := os.MkdirTemp("", "cmssim-demo")
	if err != nil {
		return exitFor(err, env)
	}
	defer os.RemoveAll(certDir)
	sim, err := cmssim.Start(ctx, cmssim.Config{
		TLS: true, CertFile: filepath.Join(certDir, "ca.pem"), Credentials: creds,
		Latency: 15 * time.Millisecond, LatencyJitter: 10 * time.Millisecond,
		NoDataShare: 0.05, PermanentShare: 0.02, TransientShare: 0.05, TransientAttempts: 1,
		TransientKinds: []string{"drop", "truncated", "0100001"}, Seed: 1, Logger: log.Level(zerolog.WarnLevel),
	})
	if err != nil {
		return exitFor(fmt.Errorf("start simulator: %w", err), env)
	}
	defer sim.Close()
	log.Info().Str("url", sim.URL()).Msg("simulator started (self-signed TLS, demo credentials)")

	// Every setting the demo does not choose is etl run's default.
	demo := c
	c = Config{}
	c.registerRun(flag.NewFlagSet("run defaults", flag.ContinueOnError))
	c.Input, c.Outputs = "csv:"+demo.Input, []string{"parquet:" + out}
	c.APIURL, c.AK, c.sk, c.CAFile = sim.URL(), creds.AK, creds.SK, sim.CAFile()
	c.Rate, c.RequestTimeout, c.Grace = demo.Rate, 5*time.Second, 5*time.Second
	c.LogFormat, c.LogLevel, c.MetricsFile = demo.LogFormat, demo.LogLevel, demo.MetricsFile
	if err := c.validateRun(); err != nil {
		return exitFor(err, env)
	}
	code := runJob(ctx, &c, env, log)
	fmt.Fprintf(env.Stderr, "\nParquet files are under %s/ (rejected and failed rows in %s/_rejects/). Query them with DuckDB:\n"+
		"  duckdb -c \"SELECT media_type_label, count(*) FROM read_parquet('%s/*/*.parquet', hive_partitioning=true) GROUP BY 1 ORDER BY 2 DESC\"\n",
		out, out, out)
	return code
}
