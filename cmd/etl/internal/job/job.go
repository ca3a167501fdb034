// Package job wires one run of the ETL: a source of call keys, the
// rate-limited pool of CC-CMS queries, the pure transform, the outputs and the
// acknowledgement of the input, and accounts for every row read.
package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/transform"
)

// Item is one input row.
type Item struct {
	Line int64       // 1-based line in a CSV input; 0 for the queue
	Key  extract.Key // valid unless Err is set
	Raw  [3]string   // ccId, vdn, callId as read, for reject records
	Err  error       // input rejected: the reason names the field

	needParquet   bool
	needWarehouse bool
}

// Source yields input rows; Next returns io.EOF at the end.
type Source interface {
	Next(ctx context.Context) (Item, error)
}

// Settlement is what the job tells the input about a finished row.
type Settlement struct {
	Item    Item
	Outcome Outcome
	Result  cms.Result // zero for rows never queried
	Reason  string
}

// Acknowledger is implemented by sources that must hear how rows ended (the
// queue). Settle runs inside the warehouse transaction when tx is non-nil,
// else as a statement of its own; once that transaction or statement has
// ended, Settled says whether it committed (a failed one may be retried, with
// a new Settle).
type Acknowledger interface {
	Settle(ctx context.Context, tx pgx.Tx, s []Settlement) error
	Settled(s []Settlement, committed bool)
}

// ParquetSink is the Parquet output.
type ParquetSink interface {
	Write(ctx context.Context, rows []transform.Row) error
	Commit(ctx context.Context) (parquet.CommitInfo, error)
}

// WarehouseSink is the Postgres output. Commit upserts rows and, in the same
// transaction, runs inTx.
type WarehouseSink interface {
	Commit(ctx context.Context, rows []transform.Row, inTx func(ctx context.Context, tx pgx.Tx) error) error
}

// FailureLog records failed and rejected rows (the rejects CSV,
// cms.call_failure). Record is called at every commit with the batch's
// failed and rejected rows (possibly none) and makes them durable.
type FailureLog interface {
	Record(ctx context.Context, tx pgx.Tx, failed []Settlement) error
}

// Skipper says which outputs already hold a key, so reruns do not query it
// again. Lookups are batched because the warehouse answers per round trip.
type Skipper interface {
	// Present returns, per key, whether the Parquet output and the warehouse
	// already hold it.
	Present(ctx context.Context, keys []extract.Key) (inParquet, inWarehouse []bool, err error)
}

// Progress is a snapshot for progress displays.
type Progress struct {
	Read      int64  // input rows read
	InputDone bool   // the source is exhausted: Read is the final row count
	Settled   int64  // rows whose outcome is known (answered, failed, skipped), committed or not
	Done      int64  // rows committed (Counts.Total())
	Counts    Counts // committed rows by outcome
	Requests  int64  // HTTP attempts, retries included
}

// Job is one run. Fields are set by the command that wires it.
type Job struct {
	RunID  string
	Logger zerolog.Logger

	Source    Source
	Ack       Acknowledger // nil for CSV input
	Client    pool.Querier
	Pool      pool.Config
	Counters  *pool.Counters
	Parquet   ParquetSink   // nil when not an output
	Warehouse WarehouseSink // nil when not an output
	// Failures are recorded once per commit, before the warehouse
	// transaction, with a nil tx (files).
	Failures []FailureLog
	// TxFailures are recorded inside the warehouse transaction (tables of
	// the warehouse), again whenever that transaction is retried.
	TxFailures []FailureLog
	Skip       Skipper // nil: query everything

	// CommitRows and CommitInterval bound the work a crash can repeat: the
	// job commits when either is reached.
	CommitRows     int
	CommitInterval time.Duration
	// Grace is how long in-flight requests may finish after an interrupt.
	Grace time.Duration
	// Lookahead is how many keys are looked up in the Skipper at once.
	Lookahead int
	// Dedup settles a key seen earlier in the run as a duplicate. Right for
	// files; wrong for the queue, where a row retried within one run is
	// legitimately claimed again.
	Dedup bool
	// CommitTimeout bounds one commit, so a hung database cannot hold the
	// output (and its lock) forever. Default 2 minutes.
	CommitTimeout time.Duration
	// CommitAllowance bounds the commits after an interrupt: whatever is
	// still committing Grace + CommitAllowance after the signal is cut off
	// and left for the next run, so a blocked database cannot keep a
	// stopping run alive past a service manager's stop timeout. Default
	// DefaultCommitAllowance.
	CommitAllowance time.Duration

	read    atomic.Int64
	unknown unknownCodes

	// For Progress, which displays poll from their own goroutine.
	settled   atomic.Int64
	inputDone atomic.Bool
	comm      atomic.Pointer[committer]
}

// Result of a run.
type Result struct {
	Counts      Counts
	Unknown     []UnknownCode
	Started     time.Time
	Finished    time.Time
	Interrupted bool  // stopped by a signal
	Err         error // why the run aborted (nil when it finished)
	Files       int   // Parquet files committed
	Problems    int64 // fields that could not be interpreted (NULL written)
}

// errInterrupted marks a stop requested by the operator.
var errInterrupted = errors.New("interrupted")

// DefaultCommitAllowance is Job.CommitAllowance's default: after an
// interrupt, commits may run until --grace plus this.
const DefaultCommitAllowance = 15 * time.Second

// errCommitCut marks a commit cut off by the bound after an interrupt.
var errCommitCut = errors.New("commit cut off")

// Run processes the source to its end or until ctx is cancelled (an
// interrupt): then it stops reading, lets in-flight requests finish within
// Grace, commits what is done and returns.
func (j *Job) Run(ctx context.Context) Result {
	res := Result{Started: time.Now(), Counts: Counts{}}
	if j.CommitRows <= 0 {
		j.CommitRows = 10000
	}
	if j.CommitInterval <= 0 {
		j.CommitInterval = 10 * time.Second
	}
	if j.Lookahead <= 0 {
		j.Lookahead = 512
	}
	if j.CommitTimeout <= 0 {
		j.CommitTimeout = 2 * time.Minute
	}
	if j.CommitAllowance <= 0 {
		j.CommitAllowance = DefaultCommitAllowance
	}
	conc := j.Pool.Concurrency
	if conc <= 0 {
		conc = pool.DefaultConcurrency
	}

	// stopCtx ends reading; reqCtx ends requests in flight. An interrupt
	// cancels the first at once and the second after the grace period; a
	// fatal API answer or a failed commit cancels both at once.
	stopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	reqCtx, cancelReq := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelReq(nil)
	finished := make(chan struct{})
	go func() {
		select {
		case <-finished:
			return
		case <-stopCtx.Done():
		}
		if ctx.Err() == nil { // not an interrupt: stop now
			cancelReq(context.Cause(stopCtx))
			return
		}
		t := time.NewTimer(j.Grace)
		defer t.Stop()
		select {
		case <-finished:
		case <-t.C:
			cancelReq(errInterrupted)
		}
	}()
	abort := func(err error) { stop(err); cancelReq(err) }

	// commitCtx is not cancelled by an interrupt, so the work done commits;
	// but only until Grace + CommitAllowance after it.
	commitCtx, cutCommits := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cutCommits(nil)
	go func() {
		select {
		case <-finished:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(j.Grace + j.CommitAllowance)
		defer t.Stop()
		select {
		case <-finished:
		case <-t.C:
			cutCommits(fmt.Errorf("%w: --grace %s plus %s for committing ran out after the interrupt", errCommitCut, j.Grace, j.CommitAllowance))
		}
	}()

	work := make(chan Item, 2*conc)
	direct := make(chan Settlement, 2*conc)
	results := make(chan pool.Done[Item], 2*conc)

	var (
		wg      sync.WaitGroup
		srcErr  error
		poolErr error
		sinkErr error
		collRes collected
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		defer close(work)
		defer close(direct)
		srcErr = j.feed(stopCtx, work, direct)
		if srcErr != nil {
			abort(srcErr)
		}
	}()
	go func() {
		defer wg.Done()
		pc := j.Pool
		pc.Stop = func(err error) { stop(err) }
		pc.Halt = stopCtx
		poolErr = pool.Run(reqCtx, pc, j.Client, work, func(it Item) extract.Key { return it.Key }, results)
	}()
	go func() {
		defer wg.Done()
		collRes, sinkErr = j.collect(commitCtx, results, direct, abort)
	}()
	wg.Wait()
	close(finished)

	res.Finished = time.Now()
	res.Counts = collRes.counts
	res.Files = collRes.files
	res.Problems = collRes.problems
	res.Unknown = j.unknown.list()
	res.Interrupted = ctx.Err() != nil
	switch {
	case sinkErr != nil && errors.Is(sinkErr, errCommitCut):
		res.Err = fmt.Errorf("%w; %d rows left for the next run", sinkErr, res.Counts[Unprocessed])
	case sinkErr != nil:
		res.Err = sinkErr
	case poolErr != nil:
		res.Err = poolErr
	case srcErr != nil:
		res.Err = srcErr
	case ctx.Err() != nil:
		res.Err = fmt.Errorf("%w: stopped reading; %d rows left for the next run", errInterrupted, res.Counts[Unprocessed])
	}
	return res
}

// Read is the number of input rows read so far.
func (j *Job) Read() int64 { return j.read.Load() }

// Progress is a snapshot of the run so far; safe to call from any
// goroutine while Run runs. At the end of a run Settled equals Read.
func (j *Job) Progress() Progress {
	p := Progress{Read: j.read.Load(), InputDone: j.inputDone.Load(), Settled: j.settled.Load(), Counts: Counts{}}
	if c := j.comm.Load(); c != nil {
		p.Counts = c.snapshot()
		p.Done = p.Counts.Total()
	}
	if j.Counters != nil {
		p.Requests = j.Counters.Attempts.Load()
	}
	return p
}

// feed reads the source, settles what needs no query (rejected, duplicate,
// already loaded) directly and sends the rest to the pool.
func (j *Job) feed(ctx context.Context, work chan<- Item, direct chan<- Settlement) error {
	var seen *extract.DigestSet
	if j.Dedup {
		var err error
		if seen, err = extract.NewDigestSet(0); err != nil {
			return fmt.Errorf("remember input keys: %w", err)
		}
		defer seen.Close()
	}
	batch := make([]Item, 0, j.Lookahead)
	keys := make([]extract.Key, 0, j.Lookahead)
	send := func(it Item) error {
		if ctx.Err() != nil {
			direct <- Settlement{Item: it, Outcome: Unprocessed}
			return nil
		}
		select {
		case work <- it:
			return nil
		case <-ctx.Done():
			// Read but not sent: account for it so nothing is silently lost.
			direct <- Settlement{Item: it, Outcome: Unprocessed}
			return nil
		}
	}
	// unprocessed accounts for rows read but not yet sent when reading stops.
	unprocessed := func() {
		for _, it := range batch {
			direct <- Settlement{Item: it, Outcome: Unprocessed}
		}
		batch = batch[:0]
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var inPq, inWh []bool
		if j.Skip != nil {
			keys = keys[:0]
			for _, it := range batch {
				keys = append(keys, it.Key)
			}
			var err error
			inPq, inWh, err = j.Skip.Present(ctx, keys)
			if err != nil {
				unprocessed()
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("look up already loaded keys: %w", err)
			}
		}
		for i, it := range batch {
			it.needParquet = j.Parquet != nil && (inPq == nil || !inPq[i])
			it.needWarehouse = j.Warehouse != nil && (inWh == nil || !inWh[i])
			if !it.needParquet && !it.needWarehouse {
				direct <- Settlement{Item: it, Outcome: AlreadyLoaded}
				continue
			}
			if err := send(it); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	}
	for ctx.Err() == nil {
		it, err := j.Source.Next(ctx)
		if errors.Is(err, io.EOF) {
			j.inputDone.Store(true)
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			unprocessed()
			return fmt.Errorf("read input: %w", err)
		}
		j.read.Add(1)
		if it.Err != nil {
			direct <- Settlement{Item: it, Outcome: Rejected, Reason: it.Err.Error()}
			continue
		}
		if seen != nil {
			added, err := seen.Add(it.Key.Digest())
			if err != nil {
				direct <- Settlement{Item: it, Outcome: Unprocessed}
				unprocessed()
				return fmt.Errorf("remember input keys: %w", err)
			}
			if !added {
				direct <- Settlement{Item: it, Outcome: Duplicate, Reason: "repeats an earlier row"}
				continue
			}
		}
		batch = append(batch, it)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

type collected struct {
	counts   Counts
	files    int
	problems int64
}

// batch is what one commit makes durable.
type batch struct {
	pqRows, whRows []transform.Row
	settled        []Settlement
}

func (b *batch) reset() {
	// Cleared so a recycled batch does not keep last commit's rows alive.
	clear(b.pqRows)
	clear(b.whRows)
	clear(b.settled)
	b.pqRows, b.whRows, b.settled = b.pqRows[:0], b.whRows[:0], b.settled[:0]
}

// committer makes batches durable one at a time in its own goroutine, so
// the collector keeps taking results while a batch is written and synced
// instead of stalling the pool for the length of every commit. At most one
// batch commits while the next one fills.
type committer struct {
	j        *Job
	ctx      context.Context // cancelled only Grace + CommitAllowance after an interrupt
	abort    func(error)
	batches  chan *batch
	free     chan *batch
	finished chan struct{}
	failed   atomic.Bool

	mu  sync.Mutex // guards out and err
	out collected
	err error
}

func (j *Job) startCommitter(ctx context.Context, abort func(error)) *committer {
	c := &committer{
		j: j, ctx: ctx, abort: abort,
		batches:  make(chan *batch),
		free:     make(chan *batch, 2),
		finished: make(chan struct{}),
		out:      collected{counts: Counts{}},
	}
	go c.run()
	return c
}

func (c *committer) run() {
	defer close(c.finished)
	for b := range c.batches {
		c.commit(b)
		b.reset()
		c.free <- b
	}
}

func (c *committer) commit(b *batch) {
	if c.failed.Load() {
		c.count(b.settled, true)
		return
	}
	var files int
	cctx, cancel := context.WithTimeout(c.ctx, c.j.CommitTimeout)
	err := c.j.commit(cctx, b.pqRows, b.whRows, b.settled, &files)
	cancel()
	if cause := context.Cause(c.ctx); err != nil && errors.Is(cause, errCommitCut) {
		err = fmt.Errorf("%w (%v)", cause, err)
	}
	if err != nil {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.failed.Store(true)
		c.abort(err)
	}
	c.mu.Lock()
	c.out.files += files
	c.mu.Unlock()
	c.count(b.settled, err != nil)
}

// count settles a batch's rows: by outcome when committed, else as
// unprocessed (the next run takes them).
func (c *committer) count(settled []Settlement, unprocessed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range settled {
		if unprocessed {
			c.out.counts[Unprocessed]++
		} else {
			c.out.counts[s.Outcome]++
		}
	}
}

// submit hands b over for commit and returns an empty batch to fill next.
func (c *committer) submit(b *batch) *batch {
	c.batches <- b
	select {
	case next := <-c.free:
		return next
	default:
		return &batch{}
	}
}

// snapshot copies the counts so far.
func (c *committer) snapshot() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := make(Counts, len(c.out.counts))
	for k, v := range c.out.counts {
		counts[k] = v
	}
	return counts
}

// close waits for the last commit and returns the totals.
func (c *committer) close() (collected, error) {
	close(c.batches)
	<-c.finished
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out, c.err
}

// collect turns results into rows and settlements and hands them to the
// committer in batches. It always drains both channels, so upstream never
// blocks.
func (j *Job) collect(ctx context.Context, results <-chan pool.Done[Item], direct <-chan Settlement, abort func(error)) (collected, error) {
	c := j.startCommitter(ctx, abort)
	j.comm.Store(c)
	var (
		cur         = &batch{}
		problems    int64
		unprocessed int64 // rows that arrived after a failed commit
		lastCommit  = time.Now()
	)
	ticker := time.NewTicker(min(j.CommitInterval, time.Second))
	defer ticker.Stop()

	submit := func() {
		if len(cur.settled) > 0 {
			cur = c.submit(cur)
		}
		lastCommit = time.Now()
	}
	add := func(s Settlement) {
		j.settled.Add(1)
		if c.failed.Load() {
			unprocessed++
			return
		}
		cur.settled = append(cur.settled, s)
	}

	for results != nil || direct != nil {
		select {
		case d, ok := <-results:
			if !ok {
				results = nil
				continue
			}
			s, row, rowOK := j.settle(d, &problems)
			if rowOK && !c.failed.Load() {
				if d.Item.needParquet {
					cur.pqRows = append(cur.pqRows, row)
				}
				if d.Item.needWarehouse {
					cur.whRows = append(cur.whRows, row)
				}
			}
			add(s)
		case s, ok := <-direct:
			if !ok {
				direct = nil
				continue
			}
			add(s)
		case <-ticker.C:
			if time.Since(lastCommit) >= j.CommitInterval {
				submit()
			}
			continue
		}
		if len(cur.pqRows) >= j.CommitRows || len(cur.whRows) >= j.CommitRows || len(cur.settled) >= 4*j.CommitRows {
			submit()
		}
	}
	submit()
	out, err := c.close()
	out.counts[Unprocessed] += unprocessed
	out.problems = problems
	return out, err
}

// settle maps a pool result to its outcome and, for ok results, a row.
func (j *Job) settle(d pool.Done[Item], problems *int64) (Settlement, transform.Row, bool) {
	s := Settlement{Item: d.Item, Result: d.Result}
	if !d.Processed || d.Result.Class == cms.ClassFatal {
		s.Outcome = Unprocessed
		return s, transform.Row{}, false
	}
	r := d.Result
	switch r.Class {
	case cms.ClassOK:
		row, unknown := transform.ToRow(transform.Input{Key: d.Item.Key, Record: r.Record, Raw: r.Raw, FetchedAt: r.FetchedAt, RunID: j.RunID})
		for _, u := range unknown {
			if u.OutOfRange() {
				*problems++
				continue
			}
			j.unknown.add(u.Field, u.Code)
		}
		if r.Record != nil && len(r.Record.Problems) > 0 {
			*problems += int64(len(r.Record.Problems))
			j.Logger.Warn().Str("call", d.Item.Key.String()).Strs("problems", r.Record.Problems).Msg("fields could not be interpreted; written as NULL")
		}
		s.Outcome = Loaded
		// The row now holds what is written; the settlement waits for the
		// commit with the other rows of the batch and needs neither.
		s.Result.Record, s.Result.Raw = nil, nil
		if !d.Item.needWarehouse {
			row.Raw = nil // only the warehouse stores the raw object
		}
		return s, row, true
	case cms.ClassNoData:
		s.Outcome = NoData
	case cms.ClassRejected:
		s.Outcome = Rejected
		s.Reason = r.Message
	default: // permanent, or transient after the last attempt
		s.Outcome = Failed
		s.Reason = failureReason(r)
	}
	return s, transform.Row{}, false
}

func failureReason(r cms.Result) string {
	msg := r.Message
	if msg == "" && r.Err != nil {
		msg = r.Err.Error()
	}
	return r.Class.String() + ": " + msg
}

// commit makes one batch durable in order: Parquet files, failure files
// and, in one transaction, warehouse rows, failures recorded in the
// warehouse and the queue's acknowledgement (see commitDB). Without a
// warehouse the queue is acknowledged last, after the Parquet files have the
// rows. Only the database part is retried, on deadlocks and serialization
// failures (isConflict).
func (j *Job) commit(ctx context.Context, pqRows, whRows []transform.Row, settled []Settlement, files *int) error {
	if j.Parquet != nil {
		if len(pqRows) > 0 {
			if err := j.Parquet.Write(ctx, pqRows); err != nil {
				return fmt.Errorf("write parquet: %w", err)
			}
		}
		info, err := j.Parquet.Commit(ctx)
		if err != nil {
			return fmt.Errorf("commit parquet: %w", err)
		}
		*files += len(info.Files)
	}
	var failed []Settlement
	for _, s := range settled {
		if s.Outcome == Failed || s.Outcome == Rejected {
			failed = append(failed, s)
		}
	}
	logs := j.Failures
	if j.Warehouse == nil {
		logs = append(logs[:len(logs):len(logs)], j.TxFailures...) // no transaction to be inside
	}
	for _, f := range logs {
		if err := f.Record(ctx, nil, failed); err != nil {
			return fmt.Errorf("record failures: %w", err)
		}
	}
	for attempt := 1; ; attempt++ {
		err := j.commitDB(ctx, whRows, settled, failed)
		if err == nil || attempt == commitAttempts || !isConflict(err) || ctx.Err() != nil {
			return err
		}
		// The transaction was rolled back whole; it holds nothing that
		// cannot simply run again.
		j.Logger.Warn().Err(err).Int("attempt", attempt).Msg("commit conflicted with another transaction; retrying it")
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(1+rand.N(2<<attempt)) * 25 * time.Millisecond):
		}
	}
}

// commitAttempts is how many times commitDB runs for one batch when it
// meets deadlocks or serialization failures.
const commitAttempts = 4

// isConflict reports a deadlock or serialization failure (SQLSTATE 40P01,
// 40001): PostgreSQL rolled the transaction back, and running it again is
// the documented remedy. Other errors are not retried: a connection lost
// during COMMIT leaves its outcome unknown.
func isConflict(err error) bool {
	var st interface{ SQLState() string }
	if !errors.As(err, &st) {
		return false
	}
	return st.SQLState() == "40P01" || st.SQLState() == "40001"
}

// commitDB makes the database part of a batch durable: in one warehouse
// transaction the rows, the failures recorded in the warehouse and the
// queue's acknowledgement; without a warehouse the acknowledgement alone
// (the queue and the warehouse share one database, DATABASE_URL).
func (j *Job) commitDB(ctx context.Context, whRows []transform.Row, settled, failed []Settlement) error {
	if j.Warehouse != nil {
		err := j.Warehouse.Commit(ctx, whRows, func(ctx context.Context, tx pgx.Tx) error {
			for _, f := range j.TxFailures {
				if err := f.Record(ctx, tx, failed); err != nil {
					return fmt.Errorf("record failures: %w", err)
				}
			}
			if j.Ack != nil {
				return j.Ack.Settle(ctx, tx, settled)
			}
			return nil
		})
		if j.Ack != nil {
			j.Ack.Settled(settled, err == nil)
		}
		if err != nil {
			return fmt.Errorf("commit warehouse: %w", err)
		}
		return nil
	}
	if j.Ack != nil {
		err := j.Ack.Settle(ctx, nil, settled)
		j.Ack.Settled(settled, err == nil)
		if err != nil {
			return fmt.Errorf("acknowledge queue rows: %w", err)
		}
	}
	return nil
}
