package cli

// etl discover: list the finished calls of VDNs through querycalls (v2),
// write them to cms.call_record and/or its Parquet dataset, and queue them
// for their CDR (etl run --input queue --query cdr).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/discover"
	"github.com/cmsetl/cms-etl/extract/pool/ratecontrol"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/pipeline/adapters"
	"github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/load/postgres"
)

const discoverSynopsis = "discover --cc-id N --vdn 25[,26,...] [--day YYYY-MM-DD | --from RFC3339 --to RFC3339] [--direction both|in|out] [--tz ZONE] " +
	"--output postgres|parquet:DIR[,...] [--enqueue cdr|basic|cdr,basic] [flags]"

// discoverConfig is etl discover's command line: what to discover, and the
// API, rate, output, reporting and run flags of etl run (Config).
type discoverConfig struct {
	Config
	CCID             int
	vdns             []string // --vdn as given
	Day, From, To    string
	Passes           string // --direction: both, in or out
	Slice, SettleLag time.Duration
	Enqueue          []string // queries: cdr, basic

	// Resolved by validate.
	disc      discover.Config
	windowArg string // the flag(s) that set the window, for messages
}

func (d *discoverConfig) register(fs *flagSet) {
	c := &d.Config
	c.registerAPI(fs)
	c.registerDB(fs)
	c.registerReport(fs)
	fs.in(groupInput)
	fs.IntVar(&d.CCID, "cc-id", 0, "call center `ID` whose calls to discover (required)")
	fs.Var(listFlag{&d.vdns}, "vdn", "the `VDN`s whose calls to discover: 25 or 25,26,... (required; repeat the flag or separate with commas)")
	fs.StringVar(&d.Day, "day", "", "the day to discover, `YYYY-MM-DD` in --tz (default: yesterday)")
	fs.StringVar(&d.From, "from", "", "start of the window to discover, `RFC3339` (with --to, instead of --day)")
	fs.StringVar(&d.To, "to", "", "end of the window to discover, exclusive, `RFC3339`")
	fs.StringVar(&d.Passes, "direction", "both", "the calls to list: `both|in|out` (inbound, outbound)")
	fs.StringVar(&c.TZ, "tz", "UTC", "time `ZONE` (IANA name) in which --day and yesterday are days, e.g. the tenant's Asia/Shanghai")
	fs.DurationVar(&d.Slice, "slice", discover.DefaultSlice, "length of the slices the window is cut into; a slice whose pages do not add up is cut in half and asked again")
	fs.DurationVar(&d.SettleLag, "settle-lag", discover.DefaultSettleLag, "ask only slices that ended at least this long ago: CC-CMS stores a call a while after it ends")
	fs.in(groupOutput)
	fs.Var(listFlag{&c.Outputs}, "output", "output of the listed calls: `postgres|parquet:DIR` (cms.call_record, or its Parquet dataset), or both")
	fs.Var(listFlag{&d.Enqueue}, "enqueue", "also queue each discovered call, with its direction, in cms.call_queue for `cdr|basic|cdr,basic` (then etl run --input queue --query cdr gets the CDRs)")
	c.registerCommit(fs)
	c.registerRate(fs)
	c.registerRunControl(fs)
}

// maxDiscoverConcurrency bounds the slices paged at once (discover.Config).
const maxDiscoverConcurrency = 64

// validate checks the command line at now and resolves the window; errors
// name the flag.
func (d *discoverConfig) validate(now time.Time) error {
	c := &d.Config
	if !c.set["cc-id"] {
		return usagef("--cc-id is required: the call center whose calls to discover")
	}
	if len(d.vdns) == 0 {
		return usagef("--vdn is required: the VDNs whose calls to discover, e.g. --vdn 25,26")
	}
	var vdns []int
	for _, v := range d.vdns {
		n, err := strconv.Atoi(v)
		if err != nil {
			return usagef("--vdn %s: not a VDN number", extract.QuoteValue(v))
		}
		vdns = append(vdns, n)
	}
	var in, out bool
	switch d.Passes {
	case "both":
		in, out = true, true
	case "in":
		in = true
	case "out":
		out = true
	default:
		return usagef("--direction %q: want both, in or out", d.Passes)
	}
	zone, err := loadZone(c.TZ)
	if err != nil {
		return err
	}
	var from, to time.Time
	switch {
	case d.Day != "" && (d.From != "" || d.To != ""):
		return usagef("--day and --from/--to exclude each other: give a day, or a window")
	case d.From != "" || d.To != "":
		if d.From == "" || d.To == "" {
			return usagef("--from and --to go together: the window is [--from, --to)")
		}
		if from, err = time.Parse(time.RFC3339, d.From); err != nil {
			return usagef("--from %s: want RFC3339, e.g. 2026-12-01T00:00:00Z", extract.QuoteValue(d.From))
		}
		if to, err = time.Parse(time.RFC3339, d.To); err != nil {
			return usagef("--to %s: want RFC3339, e.g. 2026-12-02T00:00:00Z", extract.QuoteValue(d.To))
		}
		d.windowArg = "--from " + d.From + " --to " + d.To
	default:
		day := d.Day
		if day == "" {
			y, m, dd := now.In(zone).Date()
			day = time.Date(y, m, dd-1, 0, 0, 0, 0, zone).Format(time.DateOnly)
			d.windowArg = "yesterday (" + day + " in " + zone.String() + ")"
		} else {
			d.windowArg = "--day " + day
		}
		start, err := time.ParseInLocation(time.DateOnly, day, zone)
		if err != nil {
			return usagef("--day %s: want YYYY-MM-DD", extract.QuoteValue(day))
		}
		// A calendar day in the zone: 23 or 25 hours on a DST change.
		from, to = start, start.AddDate(0, 0, 1)
	}
	if d.SettleLag < 0 {
		return usagef("--settle-lag %s: must not be negative", d.SettleLag)
	}
	if err := c.validateOutputs(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, q := range d.Enqueue {
		if queue.CheckQuery(q) != nil {
			return usagef("--enqueue %q: want cdr, basic or cdr,basic", q)
		}
		if seen[q] {
			return usagef("--enqueue: %s given twice", q)
		}
		seen[q] = true
	}
	if c.Postgres() || len(d.Enqueue) > 0 {
		if err := c.requireDB(" with --output postgres or --enqueue"); err != nil {
			return err
		}
	}
	if err := c.validateJob(); err != nil {
		return err
	}
	if c.Concurrency > maxDiscoverConcurrency {
		return usagef("--concurrency %d: etl discover pages at most %d slices at once", c.Concurrency, maxDiscoverConcurrency)
	}
	d.disc = discover.Config{CCID: d.CCID, VDNs: vdns, From: from, To: to, Inbound: in, Outbound: out,
		Slice: d.Slice, SettleLag: d.SettleLag, Concurrency: c.Concurrency}
	if err := d.disc.Validate(now); err != nil {
		if lo, hi := discover.AllowedWindow(now); from.Before(lo) || to.After(hi) {
			return &UsageError{Err: fmt.Errorf("%s: %w", d.windowArg, err),
				Hint: "discover as early as possible: after the day has closed (plus --settle-lag) and before CC-CMS drops it"}
		}
		return &UsageError{Err: err}
	}
	c.Input = fmt.Sprintf("querycalls ccId %d vdn %s %s..%s %s", d.CCID, strings.Join(d.vdns, ","),
		from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), d.Passes)
	return nil
}

func cmdDiscover(ctx context.Context, args []string, env Env, rep reporter) int {
	var d discoverConfig
	fs := newFlagSet("discover", discoverSynopsis)
	d.register(fs)
	if err := parse(fs, args, env); err != nil {
		return rep.exit(err)
	}
	if err := d.applyEnv(fs); err != nil {
		return rep.exit(err)
	}
	if err := d.validate(env.now()); err != nil {
		return rep.exit(err)
	}
	d.disc.Now = env.Now // nil: discover's own default, time.Now
	code, _ := discoverJob(ctx, &d, env, rep)
	return code
}

// discoverJob wires and runs one discovery from a validated configuration,
// as runJob does a run: the discovery is the pipeline's source, its calls
// are written to the outputs (and queued) in commits, and the summary
// reconciles every slice. It returns the exit code and the summary (nil
// when the discovery did not start: then it reported why).
func discoverJob(ctx context.Context, d *discoverConfig, env Env, rep reporter) (int, *Summary) {
	c := &d.Config
	if c.RunID == "" {
		c.RunID = newRunID()
	}
	log := NewLogger(c, env).With().Str("run", c.RunID).Logger()
	rep.log, rep.json = log, jsonLogs(c.LogFormat, env)
	c.logWarnings(log)
	c.commitDefaults()

	notStarted := func(err error) (int, *Summary) {
		code := rep.exit(err)
		if c.MetricsFile != "" {
			// Keep node_exporter from exporting last night's success.
			sum := Summary{RunID: c.RunID, Status: "aborted", ExitCode: code, Error: err.Error(), Configured: c.Rate, Started: time.Now()}
			if err := writeDiscoverMetrics(c.MetricsFile, sum); err != nil {
				log.Error().Err(err).Str("file", c.MetricsFile).Msg("write metrics file")
			}
		}
		return code, nil
	}
	w, src, enq, err := wireDiscovery(ctx, d, log)
	if err != nil {
		return notStarted(err)
	}
	defer w.close(ctx, log)
	defer src.Stop()

	started := time.Now()
	if w.db != nil {
		release, err := startRunRecord(ctx, c, w, started, log)
		if err != nil {
			return notStarted(err)
		}
		defer release()
	}
	disc := d.disc
	log.Info().Int("cc_id", disc.CCID).Ints("vdns", disc.VDNs).Time("from", disc.From).Time("to", disc.To).
		Str("direction", d.Passes).Dur("slice", disc.Slice).Strs("outputs", c.Outputs).Float64("rate", c.Rate).
		Int("concurrency", c.Concurrency).Str("version", Version()).Msg("discovery started")
	if floor := env.now().Add(-24 * time.Hour); disc.From.Before(floor) {
		// The window rule keeps calendar days; if "one day" is a rolling
		// 24 hours instead, the window's start is already gone.
		// Info, not a warning: every nightly run of a whole day meets it.
		log.Info().Time("from", disc.From).Time("rolling_24h_floor", floor).
			Msg("the window starts more than 24 hours ago: should CC-CMS keep a rolling day rather than calendar days, its first calls are gone; discover as early as the day allows")
	}

	src.Start(ctx)
	prog := startDiscoverProgress(c, env, log, src, w, disc)
	res := w.run.Run(ctx)
	src.Stop()
	prog.finish()
	dres, _ := src.Result()

	sum := summarize(c, w, res)
	sum.Discovery = newDiscoverySummary(disc, dres, enq)
	if sum.ExitCode == ExitOK && sum.Discovery.partial() {
		sum.Status, sum.ExitCode = "partial", ExitPartial
	}
	sum.Error += stopHint(res.Err)
	logDiscoveryGaps(log, sum.Discovery, disc, started)
	reportSummary(c, env, log, sum)
	if c.MetricsFile != "" {
		if err := writeDiscoverMetrics(c.MetricsFile, sum); err != nil {
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
	return sum.ExitCode, &sum
}

// stopHint explains a discovery stopped at once by the API's refusal (401,
// 403, TLS), and nothing else: a streak of failed pages or a lost rate
// group are stops of the job's own making, their messages say why.
func stopHint(err error) string {
	var se *discover.StopError
	if errors.As(err, &se) && cms.Refused(se.HTTPStatus, se.Err) {
		return " (stopped at once: repeated bad signatures can get the caller's IP locked)"
	}
	return ""
}

// wireDiscovery opens what a discovery needs: the API (rate, group,
// client), the database, the outputs of cms.call_record and the queue
// ledger; the discovery itself starts later, once everything is open.
func wireDiscovery(ctx context.Context, d *discoverConfig, log zerolog.Logger) (w *wiring, src *adapters.Discovery, enq *adapters.Enqueue, err error) {
	c := &d.Config
	w = &wiring{}
	defer func() {
		if err != nil {
			w.close(ctx, log)
		}
	}()
	if err := w.connectAPI(ctx, c, log); err != nil {
		return w, nil, nil, err
	}
	if c.Postgres() || len(d.Enqueue) > 0 {
		db, err := openWarehouse(ctx, c.DatabaseURL, 4)
		if err != nil {
			return w, nil, nil, err
		}
		w.db = db
	}
	if len(d.Enqueue) > 0 {
		enq = &adapters.Enqueue{DB: w.db, Queries: d.Enqueue}
		w.ledgers = append(w.ledgers, enq)
		// Named with the outputs in the logs and cms.etl_run.outputs.
		for _, q := range d.Enqueue {
			c.Outputs = append(c.Outputs, "queue:"+q)
		}
	}
	// A rerun skips the calls the dataset holds: each is looked up in the
	// partition its listing files it under, read when first met, so a call
	// filed days before the window (a chat that waited in a queue) is found
	// too, and memory follows the partitions the listing names.
	w.partitionOf = adapters.ListedPartition
	src = adapters.NewDiscovery(d.disc, &streakLister{l: w.client, limit: c.MaxTransient})
	w.source = src
	w.run, err = build(ctx, c, w, log, adapters.ListedQuery(c.RunID), parquet.CallRecord, postgres.CallRecord)
	return w, src, enq, err
}

// streakLister stops a discovery after --max-transient-streak pages in a
// row failed transiently or got an HTTP error (the API is down, or
// --api-url points elsewhere), as etl run stops, rather than failing every
// slice of the night one by one.
type streakLister struct {
	l      discover.Lister
	limit  int // -1: never
	streak atomic.Int64
}

func (s *streakLister) List(ctx context.Context, req cms.ListRequest) cms.ListResult {
	r := s.l.List(ctx, req)
	var se *cms.StatusError
	switch {
	case errors.Is(r.Err, ratecontrol.ErrStopped):
		// The rate group lost its database: the run stops, as etl run does.
		r.Class = cms.ClassFatal
	case r.Class == cms.ClassTransient || errors.As(r.Err, &se):
		if n := s.streak.Add(1); s.limit > 0 && n >= int64(s.limit) {
			r.Class = cms.ClassFatal
			r.Message = fmt.Sprintf("%d querycalls requests in a row failed (the API is down, or --api-url is wrong); the last: %s", n, r.Message)
		}
	default:
		s.streak.Store(0)
	}
	return r
}
