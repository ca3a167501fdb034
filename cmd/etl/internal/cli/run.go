package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/extract/pool/ratecontrol"
	"github.com/cmsetl/cms-etl/extract/pool/rategroup"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/internal/pipeline/adapters"
	"github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/load/postgres"
	"github.com/cmsetl/cms-etl/load/rejects"
	"github.com/cmsetl/cms-etl/migrations"
)

func cmdRun(ctx context.Context, args []string, env Env, rep reporter) int {
	var c Config
	fs := newFlagSet("run", "run --input csv:FILE|queue --output parquet:DIR|postgres [flags]")
	c.registerRun(fs)
	if err := parse(fs, args, env); err != nil {
		return rep.exit(err)
	}
	if err := c.applyEnv(fs); err != nil {
		return rep.exit(err)
	}
	if err := c.validateRun(); err != nil {
		return rep.exit(err)
	}
	code, _ := runJob(ctx, &c, env, rep)
	return code
}

// runJob wires and runs one job from a validated Config and returns the exit
// code and the summary (nil when the run did not start: then it reported
// why, as the "run not started" event off a terminal).
func runJob(ctx context.Context, c *Config, env Env, rep reporter) (int, *Summary) {
	if c.RunID == "" {
		c.RunID = newRunID()
	}
	log := NewLogger(c, env).With().Str("run", c.RunID).Logger()
	rep.log, rep.json = log, jsonLogs(c.LogFormat, env)
	c.logWarnings(log)
	c.commitDefaults()

	obs := newObserver()
	notStarted := func(err error) (int, *Summary) {
		code := rep.exit(err)
		if c.MetricsFile != "" {
			// Keep node_exporter from exporting last night's success.
			obs.finish(Summary{RunID: c.RunID, Status: "aborted", ExitCode: code, Error: err.Error(), Configured: c.Rate, Started: time.Now(), Counts: outcome.Counts{}})
			if err := obs.writeTextfile(c.MetricsFile); err != nil {
				log.Error().Err(err).Str("file", c.MetricsFile).Msg("write metrics file")
			}
		}
		return code, nil
	}
	if c.Listen != "" {
		stopServing, err := obs.serve(c.Listen, log)
		if err != nil {
			return notStarted(err)
		}
		defer stopServing(ctx)
	}
	w, err := wire(ctx, c, log, obs)
	if err != nil {
		return notStarted(err)
	}
	defer w.close(ctx, log)

	started := time.Now()
	obs.setSummary(func() Summary { return liveSummary(c, w, started) }, w.queue)
	var recorder *runRecorder
	if w.db != nil {
		release, err := startRunRecord(ctx, c, w, started, log)
		if err != nil {
			return notStarted(err)
		}
		defer release()
		recorder = startRunRecorder(ctx, w.db, func() postgres.RunRecord {
			sum := liveSummary(c, w, started)
			rec := w.runRecord(c, started, time.Time{}, "running", pipeline.Result{Counts: sum.Counts}, sum.AchievedRate)
			rec.Summary = sum.JSON()
			return rec
		}, log)
		obs.onCommit(recorder.committed)
	}
	log.Info().Str("input", c.Input).Str("query", describeQuery(c.Query)).Strs("outputs", c.Outputs).Float64("rate", c.Rate).
		Int("concurrency", c.Concurrency).Str("version", Version()).Msg("run started")

	var estimate int64
	if w.csv != nil && w.csv.RegularFile() != nil && c.Progress != "none" {
		estimate = estimateRows(c.CSVPath(), w.csv.Size())
	}
	prog := startProgress(c, env, log, w.run, estimate)
	obs.state.Store(int32(healthWorking))
	res := w.run.Run(ctx)
	prog.finish()
	w.closeQueue(ctx, log)

	sum := summarize(c, w, res)
	code := sum.ExitCode
	obs.finish(sum)
	reportSummary(c, env, log, sum)
	if c.MetricsFile != "" {
		if err := obs.writeTextfile(c.MetricsFile); err != nil {
			log.Error().Err(err).Str("file", c.MetricsFile).Msg("write metrics file")
		}
	}
	if recorder != nil {
		recorder.stop()
	}
	if w.db != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		defer cancel()
		rec := w.runRecord(c, started, res.Finished, sum.Status, res, sum.AchievedRate)
		rec.Summary = sum.JSON()
		if err := postgres.FinishRun(fctx, w.db, rec); err != nil {
			log.Error().Err(err).Msg("record run end (the run's row stays running until a later run marks it abandoned)")
		}
	}
	return code, &sum
}

// reportSummary logs the run_summary event and shows the summary where
// --summary says: auto is the text on stderr when it is a terminal (off a
// terminal stderr stays JSON lines and the event carries the figures); text
// and json go to stdout.
func reportSummary(c *Config, env Env, log zerolog.Logger, sum Summary) {
	text := c.Summary == "text"
	switch c.Summary {
	case "auto":
		if env.StderrIsTerminal {
			printSummary(env.Stderr, sum)
			text = true
		}
	case "text":
		printSummary(env.Stdout, sum)
	case "json":
		m := sum.JSON()
		m["run_id"] = sum.RunID
		b, err := json.Marshal(m)
		if err != nil {
			log.Error().Err(err).Msg("encode summary")
			break
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
	}
	// Console logs are for a person who just read the text summary; the
	// event repeats it as one very long line. JSON logs always carry it.
	if !text || jsonLogs(c.LogFormat, env) {
		logSummary(log, sum)
	}
}

// finishTimeout bounds the retries of the run's final record.
const finishTimeout = 15 * time.Second

// startRunRecord takes the run's liveness lock, marks the rows of runs that
// are gone as abandoned, and records this run as running. The lock is held
// until release is called, after the run's final record.
func startRunRecord(ctx context.Context, c *Config, w *wiring, started time.Time, log zerolog.Logger) (release func(), err error) {
	lock, err := postgres.LockRun(ctx, w.db.Config().ConnConfig.Copy(), c.RunID)
	if err != nil {
		return nil, fmt.Errorf("record run start in cms.etl_run: %w", err)
	}
	gone, err := postgres.AbandonGoneRuns(ctx, w.db)
	for _, r := range gone {
		log.Warn().Str("abandoned_run", r.ID).Str("host", r.Host).Time("started_at", r.StartedAt).
			Msg("a run that died without finishing is marked abandoned in cms.etl_run")
	}
	if err != nil {
		log.Warn().Err(err).Msg("could not check for abandoned runs; the next run will")
	}
	if err := postgres.StartRun(ctx, w.db, w.runRecord(c, started, time.Time{}, "running", pipeline.Result{}, 0)); err != nil {
		_ = lock.Release(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("record run start in cms.etl_run: %w", err)
	}
	return func() {
		if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
			log.Warn().Err(err).Msg("release the run's lock")
		}
	}, nil
}

// wiring holds what a run opened, to close it at the end, and the run's
// pipeline (built for the rows of its query).
type wiring struct {
	obs      *observer // metrics, health, outages
	rate     *ratecontrol.Controller
	group    *rategroup.Group
	groupDB  *pgxpool.Pool // the group's own connection: heartbeats never wait behind a commit
	counters *adapters.Counters
	client   *cms.Client
	db       *pgxpool.Pool
	csv      *csvsource.Reader
	queue    *queue.Consumer
	// closers release the outputs (sinks, files, key sets), in order.
	closers []func(context.Context) error

	source  pipeline.Source
	ledgers []pipeline.Ledger
	run     runner
	// partitionOf, when set, names the Parquet partition of an item's row
	// (etl discover): the Parquet output then looks keys up per partition
	// (adapters.NewPartitionedParquet) instead of reading the committed
	// keys of the input up front (adapters.CommittedKeys).
	partitionOf func(pipeline.Item) (string, error)
}

// runner is a built pipeline, whatever its row type.
type runner interface {
	Run(ctx context.Context) pipeline.Result
	Progress() pipeline.Progress
}

// closeQueue stops renewing leases and hands back the queue rows the run
// claimed and did not commit, at once rather than at lease expiry.
func (w *wiring) closeQueue(ctx context.Context, log zerolog.Logger) {
	if w.queue == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	n, err := w.queue.Close(rctx)
	if err != nil {
		log.Warn().Err(err).Msg("could not hand back claimed queue rows; they become claimable when their lease runs out")
		return
	}
	if n > 0 {
		log.Info().Int64("rows", n).Msg("handed back queue rows this run claimed but did not finish; the next run takes them")
	}
}

// releaseTimeout bounds handing back queue rows at the end of a run.
const releaseTimeout = 10 * time.Second

func (w *wiring) close(ctx context.Context, log zerolog.Logger) {
	w.closeQueue(ctx, log)
	if w.group != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := w.group.Leave(lctx); err != nil {
			log.Warn().Err(err).Msg("leave the rate group; the other members take this share back within seconds")
		}
		cancel()
	}
	if w.groupDB != nil {
		w.groupDB.Close()
	}
	for _, c := range w.closers {
		if err := c(context.WithoutCancel(ctx)); err != nil {
			log.Error().Err(err).Msg("close output")
		}
	}
	if w.client != nil {
		w.client.Close()
	}
	if w.db != nil {
		w.db.Close()
	}
}

func (w *wiring) runRecord(c *Config, started, finished time.Time, status string, res pipeline.Result, achieved float64) postgres.RunRecord {
	host, _ := os.Hostname()
	return postgres.RunRecord{
		ID: c.RunID, Host: host, Version: Version(), Input: c.Input, Outputs: strings.Join(c.Outputs, ","),
		StartedAt: started, FinishedAt: finished, Status: status,
		RowsRead: res.Counts.Total(), Loaded: res.Counts[outcome.Loaded], NoData: res.Counts[outcome.NoData],
		Failed: res.Counts[outcome.Failed], Rejected: res.Counts[outcome.Rejected], Duplicate: res.Counts[outcome.Duplicate],
		ConfiguredRate: c.Rate, AchievedRate: achieved,
	}
}

func wire(ctx context.Context, c *Config, log zerolog.Logger, obs *observer) (w *wiring, err error) {
	w = &wiring{obs: obs}
	defer func() {
		if err != nil {
			w.close(ctx, log)
		}
	}()
	if err := w.connectAPI(ctx, c, log); err != nil {
		return w, err
	}

	if c.DatabaseURL != "" && (c.Postgres() || c.Input == "queue") {
		db, err := openWarehouse(ctx, c.DatabaseURL, 4)
		if err != nil {
			return w, err
		}
		w.db = db
	}

	if path := c.CSVPath(); path != "" {
		r, err := csvsource.Open(c.csvConfig())
		if err != nil {
			return w, &UsageError{Err: fmt.Errorf("--input: %w", err)}
		}
		w.csv = r
		src := adapters.NewCSV(r)
		src.Dir = c.directionRule()
		w.closers = append(w.closers, func(context.Context) error { return src.Close() })
		w.source = src
		if dir := c.ParquetDir(); dir != "" {
			rej, err := rejects.Create(dir, c.RunID)
			if err != nil {
				return w, fmt.Errorf("create rejects file: %w", err)
			}
			w.closers = append(w.closers, func(context.Context) error { return rej.Close() })
			w.ledgers = append(w.ledgers, adapters.Rejects{W: rej})
		}
		if c.Postgres() {
			w.ledgers = append(w.ledgers, adapters.FailureTable{DB: w.db, RunID: c.RunID})
		}
	} else {
		host, _ := os.Hostname()
		qc, err := queue.NewConsumer(ctx, queue.Config{
			Pool: w.db, Owner: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), c.RunID), Lease: c.Lease,
			MaxAttempts: c.QueueMaxAttempt, Logger: log,
			ClaimBatch: claimBatch(c), MaxItems: c.MaxItems, MaxDuration: c.MaxDuration,
			Query:  c.queueQuery(),
			Follow: c.Follow, PollInterval: c.PollInterval, TrackEvery: c.TrackEvery, TrackMax: c.TrackMax,
		})
		if err != nil {
			return w, &UsageError{Err: err}
		}
		w.queue = qc
		w.source = adapters.Queue{C: qc, Dir: c.directionRule()}
		w.ledgers = append(w.ledgers, adapters.Queue{C: qc})
	}

	if c.Query == queue.QueryCDR {
		zone, err := loadZone(c.TZ)
		if err != nil {
			return w, err
		}
		w.run, err = build(ctx, c, w, log, countInFlight(obs, adapters.DetailQuery(w.client, c.RunID, zone)), parquet.CallDetail, postgres.CallDetail)
		return w, err
	}
	query := adapters.BasicQuery(w.client, c.RunID)
	if w.queue != nil {
		query = adapters.QueueBasicQuery(w.client, c.RunID, adapters.Tracking{Track: w.queue.Queue().Tracking,
			FirstAnswer: func(d time.Duration) { obs.firstAnswer.Observe(d.Seconds()) }})
	}
	w.run, err = build(ctx, c, w, log, countInFlight(obs, query), parquet.CallInfo, postgres.CallInfo)
	return w, err
}

// connectAPI sets up what talks to CC-CMS: the rate controller (in its
// group with --rate-group), the counters and the client.
func (w *wiring) connectAPI(ctx context.Context, c *Config, log zerolog.Logger) error {
	rcfg := ratecontrol.Config{Rate: c.Rate, Burst: c.Burst}
	if c.RateGroup != "" {
		// The group uses the database only for its members table, whatever
		// the input and outputs; an unmigrated one is told to run etl migrate.
		gdb, err := openWarehouse(ctx, c.DatabaseURL, 1)
		if err != nil {
			return err
		}
		w.groupDB = gdb
		g, err := rategroup.New(rategroup.Config{Name: c.RateGroup, Pool: gdb, Rate: c.Rate, RunID: c.RunID, Logger: log})
		if err != nil {
			return &UsageError{Err: err}
		}
		w.group = g
		rcfg.OnThrottle = g.Throttled
	}
	rc, err := ratecontrol.New(rcfg)
	if err != nil {
		return &UsageError{Err: err}
	}
	w.rate = rc
	if w.group != nil {
		if err := w.group.Join(ctx, rc); err != nil {
			return err
		}
		st := w.group.Stats()
		log.Info().Str("rate_group", st.Name).Int("members", st.Members).Float64("group_rate", st.GroupRate).
			Float64("share", st.Share).Msg("joined the rate group")
	}
	w.counters = adapters.NewCounters(rc)
	client, err := newClient(c, log, rc, w.counters.Observe)
	if err != nil {
		return err
	}
	w.client = client
	return nil
}

// build opens the outputs of the rows of one query and makes the run's
// pipeline.
func build[R any](ctx context.Context, c *Config, w *wiring, log zerolog.Logger, query pipeline.Query[R],
	pqTable *parquet.Table[R], pgTable *postgres.Table[R]) (runner, error) {
	var outputs []pipeline.Output[R]
	if dir := c.ParquetDir(); dir != "" {
		sink, err := parquet.Open(ctx, parquet.Config{Dir: dir, RunID: c.RunID, Logger: log}, pqTable)
		if err != nil {
			return nil, fmt.Errorf("open parquet output: %w", err)
		}
		w.closers = append(w.closers, sink.Close)
		out, err := parquetOutput(ctx, c, w, log, sink, dir)
		if err != nil {
			return nil, err
		}
		outputs = append(outputs, out)
	}
	if c.Postgres() {
		sink, err := postgres.NewSink(postgres.Config{Pool: w.db, Logger: log}, pgTable)
		if err != nil {
			return nil, err
		}
		var retry time.Duration
		if c.Follow {
			retry = queue.DefaultMaxDatabaseOutage // a database restart does not end a follower
		}
		outputs = append(outputs, adapters.NewWarehouse(sink, pgTable, w.db, c.Input != "queue" && !c.Refresh, retry, log))
	}
	pc := pool.Config{Concurrency: c.Concurrency, MaxTransientStreak: c.MaxTransient, MaxHTTPErrorStreak: c.MaxTransient}
	var onCommit func()
	if w.obs != nil {
		onCommit = w.obs.committed
		if c.Follow {
			// A follower has no next run: it waits out an API outage.
			pc.Probe, pc.OnOutage = adapters.Probe(w.client), w.obs.onOutage(log)
		}
	}
	return pipeline.New(pipeline.Config[R]{
		RunID: c.RunID, Logger: log, Source: w.source, Query: query, Outputs: outputs, Ledgers: w.ledgers,
		Requests: w.counters.Attempts.Load,
		// One flag bounds both streaks: the API down, or the wrong URL.
		Pool:  pc,
		Dedup: w.csv != nil, CommitRows: c.CommitRows, CommitInterval: c.CommitInterval, Grace: c.Grace,
		Follow: c.Follow, OnCommit: onCommit,
	})
}

// parquetOutput is the Parquet output over sink, with what a rerun needs to
// skip the keys dir already holds: looked up per partition when the items
// name theirs (w.partitionOf), else the committed keys of the input, read
// up front.
func parquetOutput[R any](ctx context.Context, c *Config, w *wiring, log zerolog.Logger, sink *parquet.Sink[R], dir string) (pipeline.Output[R], error) {
	if w.partitionOf != nil {
		out, closeKeys, err := adapters.NewPartitionedParquet(sink, dir, w.partitionOf, log)
		if err != nil {
			return nil, err
		}
		w.closers = append(w.closers, closeKeys)
		return out, nil
	}
	committed, st, err := adapters.CommittedKeys(ctx, dir, w.csv, c.csvConfig(), log)
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func(context.Context) error { return committed.Close() })
	if st.Files > 0 {
		log.Info().Int("rows", committed.Len()).Int("files", st.Files).Int("files_skipped", st.SkippedFiles).
			Int("rows_read", st.Rows).Str("dir", dir).
			Msg("resuming: rows of this input already committed will not be queried again")
	}
	return adapters.NewParquet(sink, committed), nil
}

func openDB(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included: do not wrap it.
		return nil, &UsageError{Err: errors.New("--database-url: cannot parse the PostgreSQL URL"),
			Hint: "write it as postgres://USER@HOST:PORT/DATABASE (the password in ~/.pgpass or PGPASSWORD)"}
	}
	cfg.MaxConns = maxConns
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.Ping(pctx); err != nil {
		db.Close()
		return nil, connectError(cfg.ConnConfig, err)
	}
	return db, nil
}

// openWarehouse opens the database of --output postgres and --input queue
// and checks that its schema is the version this etl needs, so that an
// unmigrated database is told to run etl migrate.
func openWarehouse(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	db, err := openDB(ctx, url, maxConns)
	if err != nil {
		return nil, err
	}
	if err := migrations.Check(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// connectError reports why PostgreSQL could not be reached, once. pgx lists
// every attempt: each address, and under the default sslmode=prefer a TLS
// attempt before a plain one, so against a server without TLS its message
// starts with "server refused TLS connection" while the real cause is the
// server's answer to the plain attempt. The server's answer wins, then the
// last attempt that was not a TLS negotiation.
func connectError(cfg *pgx.ConnConfig, err error) error {
	cause := err
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		attempts := connectAttempts(ce.Unwrap())
		cause = attempts[len(attempts)-1]
		for i := len(attempts) - 1; i >= 0; i-- {
			if msg := attempts[i].Error(); !strings.Contains(msg, "tls error") && !strings.Contains(msg, "refused TLS") {
				cause = attempts[i]
				break
			}
		}
		for _, a := range attempts {
			var pe *pgconn.PgError
			if errors.As(a, &pe) {
				cause = a
				break
			}
		}
		// An attempt's text starts with its address, which the message names already.
		if inner := errors.Unwrap(cause); inner != nil && strings.HasSuffix(cause.Error(), inner.Error()) {
			cause = inner
		}
	}
	target := fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	e := fmt.Errorf("connect to postgres %s (database %s, user %s): %w", target, cfg.Database, cfg.User, cause)
	var pe *pgconn.PgError
	var ne net.Error
	switch {
	case errors.As(cause, &pe) && (pe.Code == "28P01" || pe.Code == "28000"):
		return withHint(e, "check the user and password of --database-url (or DATABASE_URL, ~/.pgpass)")
	case errors.As(cause, &pe) && pe.Code == "3D000":
		return withHint(e, "create the database, then run `etl migrate`")
	case errors.As(cause, &ne), errors.Is(cause, context.DeadlineExceeded):
		return withHint(e, "check the host and port of --database-url (or DATABASE_URL) and that PostgreSQL is running")
	}
	return e
}

// connectAttempts are the distinct attempts pgx joined into err.
func connectAttempts(err error) []error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		j, ok := e.(interface{ Unwrap() []error })
		if !ok {
			continue
		}
		var out []error
		seen := map[string]bool{}
		for _, a := range j.Unwrap() {
			if !seen[a.Error()] {
				seen[a.Error()] = true
				out = append(out, a)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return []error{err}
}

// rateController is what the client waits on and asks before retrying.
type rateController interface {
	cms.Limiter
	cms.RetryBudget
}

func newClient(c *Config, log zerolog.Logger, rc rateController, onAttempt func(cms.Attempt)) (*cms.Client, error) {
	cc := cms.Config{
		BaseURL:            c.APIURL,
		Credentials:        c.Credentials(),
		SignedHeaders:      strings.Split(c.SignedHeaders, ";"),
		TimestampLayout:    c.TimestampLayout(),
		MaxAttempts:        c.MaxAttempts,
		RequestTimeout:     c.RequestTimeout,
		CAFile:             c.CAFile,
		TLSServerName:      c.TLSServerName,
		InsecureSkipVerify: c.InsecureSkip,
		MaxConns:           max(c.Concurrency, 1),
		DiscardRaw:         !c.Postgres() && c.TrackEvery == 0, // only the warehouse stores it; tracking keeps it for the final row
		Limiter:            rc,
		RetryBudget:        rc,
		OnAttempt:          onAttempt,
		Logger:             log,
	}
	client, err := cms.New(cc)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	return client, nil
}
