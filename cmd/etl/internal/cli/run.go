package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/cmd/etl/internal/job"
	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/load/postgres"
	"github.com/cmsetl/cms-etl/load/rejects"
)

func cmdRun(ctx context.Context, args []string, env Env) int {
	var c Config
	fs := newFlagSet("run", "run --input csv:FILE|queue --output parquet:DIR|postgres [flags]")
	c.registerRun(fs)
	if err := parse(fs, args, env); err != nil {
		return exitFor(err, env)
	}
	if err := c.applyEnv(fs); err != nil {
		return exitFor(err, env)
	}
	if err := c.validateRun(); err != nil {
		return exitFor(err, env)
	}
	log := NewLogger(&c, env)
	c.logWarnings(log)
	return runJob(ctx, &c, env, log)
}

// runJob wires and runs one job from a validated Config and returns the exit code.
func runJob(ctx context.Context, c *Config, env Env, log zerolog.Logger) int {
	if c.RunID == "" {
		c.RunID = newRunID()
	}
	log = log.With().Str("run", c.RunID).Logger()
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

	w, err := wire(ctx, c, log)
	if err != nil {
		log.Error().Err(err).Msg("run not started")
		code := ExitAborted
		var ue *UsageError
		if errors.As(err, &ue) {
			code = ExitUsage
		}
		if c.MetricsFile != "" {
			// Keep node_exporter from exporting last night's success.
			sum := Summary{RunID: c.RunID, Status: "aborted", ExitCode: code, Error: err.Error(), Configured: c.Rate, Started: time.Now(), Counts: job.Counts{}}
			if err := writeMetrics(c.MetricsFile, sum); err != nil {
				log.Error().Err(err).Str("file", c.MetricsFile).Msg("write metrics file")
			}
		}
		return code
	}
	defer w.close(ctx, log)

	started := time.Now()
	if w.db != nil {
		lock, err := startRunRecord(ctx, c, w, started, log)
		if err != nil {
			log.Error().Err(err).Msg("record run start")
			return ExitAborted
		}
		defer func() {
			if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
				log.Warn().Err(err).Msg("release the run's lock")
			}
		}()
	}
	log.Info().Str("input", c.Input).Strs("outputs", c.Outputs).Float64("rate", c.Rate).
		Int("concurrency", c.Concurrency).Str("version", Version()).Msg("run started")

	prog := newProgress(c, env, log, w.size)
	w.job.OnProgress = prog.update
	w.job.ProgressEvery = 10 * time.Second
	res := w.job.Run(ctx)
	prog.finish()
	w.closeQueue(ctx, log)

	sum := summarize(c, w, res)
	code := sum.ExitCode
	printSummary(env.Stderr, sum)
	logSummary(log, sum)
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
	return code
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
	limiter *pool.AdaptiveLimiter
	client  *cms.Client
	db      *pgxpool.Pool
	csv     *csvsource.Reader
	pq      *parquet.Sink
	rej     *rejects.Writer
	queue   *queue.Consumer
	done    *extract.DigestSet // keys the Parquet output already holds
	size    func() (done, total int64)
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
	lim := pool.NewAdaptiveLimiter(c.Rate, c.Burst)
	w.limiter = lim
	counters := pool.NewCounters(lim)
	client, err := newClient(c, log, lim, counters.Observe)
	if err != nil {
		return w, err
	}
	w.client = client
	j := &job.Job{
		RunID: c.RunID, Logger: log, Client: client, Counters: counters,
		Pool:       pool.Config{Concurrency: c.Concurrency, MaxTransientStreak: c.MaxTransient},
		CommitRows: c.CommitRows, CommitInterval: c.CommitInterval, Grace: c.Grace,
	}
	w.job = j

	if c.DatabaseURL != "" && (c.Postgres() || c.Input == "queue") {
		db, err := openDB(ctx, c.DatabaseURL, 4)
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
		pq, err := parquet.Open(ctx, parquet.Config{Dir: dir, RunID: c.RunID, Logger: log})
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
		sink, err := postgres.NewSink(postgres.Config{Pool: w.db, Logger: log})
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
		w.size = func() (int64, int64) { return r.BytesRead(), r.Size() }
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
		return nil, &UsageError{Err: errors.New("--database-url: cannot parse the PostgreSQL URL")}
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
		return nil, fmt.Errorf("connect to postgres %s: %w", cfg.ConnConfig.Host, err)
	}
	return db, nil
}

func newClient(c *Config, log zerolog.Logger, lim cms.Limiter, onAttempt func(cms.Attempt)) (*cms.Client, error) {
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
		Limiter:            lim,
		OnAttempt:          onAttempt,
		Logger:             log,
	}
	client, err := cms.New(cc)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	return client, nil
}
