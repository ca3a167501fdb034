package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/cmd/etl/internal/job"
	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/extract/pool/ratecontrol"
	"github.com/cmsetl/cms-etl/extract/pool/rategroup"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/load/postgres"
	"github.com/cmsetl/cms-etl/load/rejects"
	"github.com/cmsetl/cms-etl/migrations"
	"github.com/cmsetl/cms-etl/transform"
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
	if c.CommitRows == 0 {
		c.CommitRows = 10000
		if c.Postgres() {
			c.CommitRows = 5000
		}
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 10 * time.Second
		if c.Postgres() {
			c.CommitInterval = 2 * time.Second
		}
	}

	notStarted := func(err error) (int, *Summary) {
		code := rep.exit(err)
		if c.MetricsFile != "" {
			// Keep node_exporter from exporting last night's success.
			sum := Summary{RunID: c.RunID, Status: "aborted", ExitCode: code, Error: err.Error(), Configured: c.Rate, Started: time.Now(), Counts: job.Counts{}}
			if err := writeMetrics(c.MetricsFile, sum); err != nil {
				log.Error().Err(err).Str("file", c.MetricsFile).Msg("write metrics file")
			}
		}
		return code, nil
	}
	w, err := wire(ctx, c, log)
	if err != nil {
		return notStarted(err)
	}
	defer w.close(ctx, log)

	started := time.Now()
	if w.db != nil {
		lock, err := startRunRecord(ctx, c, w, started, log)
		if err != nil {
			return notStarted(fmt.Errorf("record run start in cms.etl_run: %w", err))
		}
		defer func() {
			if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
				log.Warn().Err(err).Msg("release the run's lock")
			}
		}()
	}
	log.Info().Str("input", c.Input).Strs("outputs", c.Outputs).Float64("rate", c.Rate).
		Int("concurrency", c.Concurrency).Str("version", Version()).Msg("run started")

	var estimate int64
	if w.csv != nil && w.csv.RegularFile() != nil && c.Progress != "none" {
		estimate = estimateRows(c.CSVPath(), w.csv.Size())
	}
	prog := startProgress(c, env, log, w.job, estimate)
	res := w.job.Run(ctx)
	prog.finish()
	w.closeQueue(ctx, log)

	sum := summarize(c, w, res)
	code := sum.ExitCode
	reportSummary(c, env, log, sum)
	if c.MetricsFile != "" {
		if err := writeMetrics(c.MetricsFile, sum); err != nil {
			log.Error().Err(err).Str("file", c.MetricsFile).Msg("write metrics file")
		}
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
// until the returned RunLock is released, after the run's final record.
func startRunRecord(ctx context.Context, c *Config, w *wiring, started time.Time, log zerolog.Logger) (*postgres.RunLock, error) {
	lock, err := postgres.LockRun(ctx, w.db.Config().ConnConfig.Copy(), c.RunID)
	if err != nil {
		return nil, err
	}
	gone, err := postgres.AbandonGoneRuns(ctx, w.db)
	for _, r := range gone {
		log.Warn().Str("abandoned_run", r.ID).Str("host", r.Host).Time("started_at", r.StartedAt).
			Msg("a run that died without finishing is marked abandoned in cms.etl_run")
	}
	if err != nil {
		log.Warn().Err(err).Msg("could not check for abandoned runs; the next run will")
	}
	if err := postgres.StartRun(ctx, w.db, w.runRecord(c, started, time.Time{}, "running", job.Result{}, 0)); err != nil {
		_ = lock.Release(context.WithoutCancel(ctx))
		return nil, err
	}
	return lock, nil
}

// wiring holds what a run opened, to close it at the end.
type wiring struct {
	job     *job.Job
	rate    *ratecontrol.Controller
	group   *rategroup.Group
	groupDB *pgxpool.Pool // the group's own connection: heartbeats never wait behind a commit
	client  *cms.Client
	db      *pgxpool.Pool
	csv     *csvsource.Reader
	pq      *parquet.Sink[transform.Row]
	rej     *rejects.Writer
	queue   *queue.Consumer
	done    *extract.DigestSet // keys the Parquet output already holds
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
	if w.pq != nil {
		if err := w.pq.Close(context.WithoutCancel(ctx)); err != nil {
			log.Error().Err(err).Msg("close parquet output")
		}
	}
	if w.rej != nil {
		if err := w.rej.Close(); err != nil {
			log.Error().Err(err).Msg("close rejects file")
		}
	}
	if w.csv != nil {
		_ = w.csv.Close()
	}
	if w.client != nil {
		w.client.Close()
	}
	if w.db != nil {
		w.db.Close()
	}
	if w.done != nil {
		_ = w.done.Close()
	}
}

func (w *wiring) runRecord(c *Config, started, finished time.Time, status string, res job.Result, achieved float64) postgres.RunRecord {
	host, _ := os.Hostname()
	return postgres.RunRecord{
		ID: c.RunID, Host: host, Version: Version(), Input: c.Input, Outputs: strings.Join(c.Outputs, ","),
		StartedAt: started, FinishedAt: finished, Status: status,
		RowsRead: res.Counts.Total(), Loaded: res.Counts[job.Loaded], NoData: res.Counts[job.NoData],
		Failed: res.Counts[job.Failed], Rejected: res.Counts[job.Rejected], Duplicate: res.Counts[job.Duplicate],
		ConfiguredRate: c.Rate, AchievedRate: achieved,
	}
}

func wire(ctx context.Context, c *Config, log zerolog.Logger) (w *wiring, err error) {
	w = &wiring{}
	defer func() {
		if err != nil {
			w.close(ctx, log)
		}
	}()
	rcfg := ratecontrol.Config{Rate: c.Rate, Burst: c.Burst}
	if c.RateGroup != "" {
		// The group uses the database only for its members table, whatever
		// the input and outputs; an unmigrated one is told to run etl migrate.
		gdb, err := openWarehouse(ctx, c.DatabaseURL, 1)
		if err != nil {
			return w, err
		}
		w.groupDB = gdb
		g, err := rategroup.New(rategroup.Config{Name: c.RateGroup, Pool: gdb, Rate: c.Rate, RunID: c.RunID, Logger: log})
		if err != nil {
			return w, &UsageError{Err: err}
		}
		w.group = g
		rcfg.OnThrottle = g.Throttled
	}
	rc, err := ratecontrol.New(rcfg)
	if err != nil {
		return w, &UsageError{Err: err}
	}
	w.rate = rc
	if w.group != nil {
		if err := w.group.Join(ctx, rc); err != nil {
			return w, err
		}
		st := w.group.Stats()
		log.Info().Str("rate_group", st.Name).Int("members", st.Members).Float64("group_rate", st.GroupRate).
			Float64("share", st.Share).Msg("joined the rate group")
	}
	counters := pool.NewCounters(rc)
	client, err := newClient(c, log, rc, counters.Observe)
	if err != nil {
		return w, err
	}
	w.client = client
	j := &job.Job{
		RunID: c.RunID, Logger: log, Client: client, Counters: counters,
		// One flag bounds both streaks: the API down, or the wrong URL.
		Pool:       pool.Config{Concurrency: c.Concurrency, MaxTransientStreak: c.MaxTransient, MaxHTTPErrorStreak: c.MaxTransient},
		CommitRows: c.CommitRows, CommitInterval: c.CommitInterval, Grace: c.Grace,
	}
	w.job = j

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
	}

	skip := &skipper{}
	if dir := c.ParquetDir(); dir != "" {
		pq, err := parquet.Open(ctx, parquet.Config{Dir: dir, RunID: c.RunID, Logger: log}, parquet.CallInfo)
		if err != nil {
			return w, fmt.Errorf("open parquet output: %w", err)
		}
		w.pq = pq
		j.Parquet = pq
		committed, st, err := committedKeys(ctx, c, dir, w.csv, log)
		if err != nil {
			return w, err
		}
		w.done = committed
		if st.Files > 0 {
			log.Info().Int("rows", committed.Len()).Int("files", st.Files).Int("files_skipped", st.SkippedFiles).
				Int("rows_read", st.Rows).Str("dir", dir).
				Msg("resuming: rows of this input already committed will not be queried again")
		}
		if committed.Len() > 0 { // an empty set would only cost a digest per key
			skip.parquet = committed
		}
	}
	if c.Postgres() {
		sink, err := postgres.NewSink(postgres.Config{Pool: w.db, Logger: log}, postgres.CallInfo)
		if err != nil {
			return w, err
		}
		j.Warehouse = warehouse{sink}
		if c.Input != "queue" && !c.Refresh {
			skip.db = w.db
		}
	}
	if skip.parquet != nil || skip.db != nil {
		j.Skip = skip
	}

	if r := w.csv; r != nil {
		j.Source = csvSource{r}
		j.Dedup = true
		if dir := c.ParquetDir(); dir != "" {
			rej, err := rejects.Create(dir, c.RunID)
			if err != nil {
				return w, fmt.Errorf("create rejects file: %w", err)
			}
			w.rej = rej
			j.Failures = append(j.Failures, rejectsLog{rej})
		}
		if c.Postgres() {
			j.TxFailures = append(j.TxFailures, &dbFailureLog{db: w.db, runID: c.RunID})
		}
	} else {
		qs, err := newQueueSource(ctx, c, w.db, log)
		if err != nil {
			return w, err
		}
		w.queue = qs.c
		j.Source = qs
		j.Ack = qs
	}
	return w, nil
}

// committedKeys reads which keys DIR already holds. With a regular file as
// input and a non-empty DIR it first reads the file once for its keys and
// keeps only those: memory then follows the input, not the lake's history.
// Inputs that can be read only once (stdin, pipes), a file that changed since
// the run opened it, or a pre-read that failed keep every committed key.
func committedKeys(ctx context.Context, c *Config, dir string, input *csvsource.Reader, log zerolog.Logger) (*extract.DigestSet, parquet.CommittedStats, error) {
	var filter *parquet.Filter
	if input != nil && input.RegularFile() != nil {
		has, err := parquet.HasCommitted(dir)
		if err != nil {
			return nil, parquet.CommittedStats{}, fmt.Errorf("read committed keys in %s: %w", dir, err)
		}
		if has {
			path := c.CSVPath()
			in, err := csvKeys(ctx, c.csvConfig())
			switch {
			case ctx.Err() != nil:
				if in.set != nil {
					in.set.Close()
				}
				return nil, parquet.CommittedStats{}, fmt.Errorf("read the keys of %s: %w", path, ctx.Err())
			case err != nil:
				// The run itself reports the problem with its line.
				log.Warn().Err(err).Msg("could not read the input's keys ahead; keeping every committed key in memory")
			case !sameFile(input.RegularFile(), path):
				in.set.Close()
				log.Warn().Str("input", path).Msg("the input changed while its keys were read; keeping every committed key in memory")
			case in.set.Len() == 0:
				// No valid key: nothing committed can match.
				return in.set, parquet.CommittedStats{}, nil
			default:
				defer in.set.Close()
				filter = &parquet.Filter{Keep: in.set.Has, MinCallID: in.minCallID, MaxCallID: in.maxCallID}
			}
		}
	}
	committed, st, err := parquet.CommittedKeys(ctx, dir, filter)
	if err != nil {
		return nil, st, fmt.Errorf("read committed keys in %s: %w", dir, err)
	}
	return committed, st, nil
}

// sameFile reports whether path is still the file opened, unchanged.
func sameFile(opened os.FileInfo, path string) bool {
	now, err := os.Stat(path)
	return err == nil && os.SameFile(opened, now) && now.Size() == opened.Size() && now.ModTime().Equal(opened.ModTime())
}

// inputKeys are the valid keys of a CSV file and the range of their call IDs
// in byte order.
type inputKeys struct {
	set                  *extract.DigestSet
	minCallID, maxCallID string
}

// csvKeys reads the keys of a CSV file; bad rows are skipped here and
// reported by the run itself.
func csvKeys(ctx context.Context, cfg csvsource.Config) (inputKeys, error) {
	r, err := csvsource.Open(cfg)
	if err != nil {
		return inputKeys{}, err
	}
	defer r.Close()
	in := inputKeys{}
	if in.set, err = extract.NewDigestSet(0); err != nil {
		return inputKeys{}, err
	}
	for k, err := range validKeys(r, nil) {
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			if in.set.Len() == 0 || k.CallID < in.minCallID {
				in.minCallID = strings.Clone(k.CallID)
			}
			if in.set.Len() == 0 || k.CallID > in.maxCallID {
				in.maxCallID = strings.Clone(k.CallID)
			}
			_, err = in.set.Add(k.Digest())
		}
		if err != nil {
			in.set.Close()
			return inputKeys{}, err
		}
	}
	return in, nil
}

// validKeys yields the valid keys of r, then a fatal read error if any;
// rejected rows go to onReject (may be nil).
func validKeys(r *csvsource.Reader, onReject func(csvsource.Item)) iter.Seq2[extract.Key, error] {
	return func(yield func(extract.Key, error) bool) {
		for {
			it, err := r.Next()
			switch {
			case errors.Is(err, io.EOF):
				return
			case err != nil:
				yield(extract.Key{}, err)
				return
			case it.Err != nil:
				if onReject != nil {
					onReject(it)
				}
			case !yield(it.Key, nil):
				return
			}
		}
	}
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
		DiscardRaw:         !c.Postgres(), // only the warehouse stores the raw object
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
