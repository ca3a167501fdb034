// Package pipeline runs one pass of the job: it reads input rows from a
// Source, settles what needs no call (rejected, duplicate, already held by
// every output), runs the rest through the worker pool (package pool) with a
// Query that asks CC-CMS and turns the answer into a row of type R, commits
// the rows to a list of Outputs in batches, records how every row ended in
// Ledgers (the queue's acknowledgement, the failure logs), and accounts for
// every row read.
//
// The loop knows no concrete input or output: it sees the small interfaces
// declared here, implemented over the extract and load packages by package
// adapters. It imports neither pgx nor any load package. The parts:
//
//   - feed.go: reading the source, de-duplication, resume lookups;
//   - the pool (extract/pool): calls in flight, streaks, stops;
//   - collect.go: answers into batches of rows and settlements;
//   - commit.go: the commit protocol, one batch at a time beside the
//     collector.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/transform"
)

// Item is one input row.
type Item struct {
	Line    int64       // 1-based line in a CSV input; 0 for the queue
	Key     extract.Key // valid unless Err is set
	Inbound bool        // the call's direction, for interfaces that ask it (the CDR)
	Raw     [3]string   // ccId, vdn, callId as read, for failure records
	Err     error       // input rejected: the reason names the field
	// Payload is what the source already knows of the call, for a Query
	// that needs no request (a listed call of etl discover); nil otherwise.
	Payload any

	// Live is what the source kept of a call it follows while it is in
	// progress (queue tracking); nil for a call not answered live yet.
	Live *Live
	// EnqueuedAt is when the call was queued (zero for files); Answered
	// says the API answered about it before (a no-data retry, a tracked
	// call's poll), so an answer now is not its first.
	EnqueuedAt time.Time
	Answered   bool

	need outputSet // outputs that do not hold the key yet
}

// Live is a tracked call's state kept between polls: when it first answered
// live and its last live answer, from which its final row is made when it
// ends.
type Live struct {
	Since  time.Time
	Last   json.RawMessage
	LastAt time.Time
}

// Source yields input rows; Next returns io.EOF at the end.
type Source interface {
	Next(ctx context.Context) (Item, error)
}

// Buffered is a Source that can tell how many items Next returns without
// waiting. The feed batches items for the Holders' lookups; before a Next
// that may wait (a pipe, a queue with nothing due) it hands over what it
// holds, so a trickle of rows is not held back until a batch fills.
type Buffered interface {
	Buffered() int
}

// Answer is what a Query made of one item: its outcome and, when loaded, the
// row; the rest describes the call for the ledgers and the summary.
type Answer[R any] struct {
	// Outcome is Loaded (Row set), Tracked (Row set: an interim state, see
	// outcome.Tracked), NoData, Failed or Rejected; Unprocessed when the
	// call was cut off by the run's stop.
	Outcome outcome.Outcome
	// Closing marks a Loaded row made from a tracked call's last live
	// answer when the call ended: only the outputs that take one row per
	// call (FinalRowsOnly) take it; the others have had it as it came.
	Closing bool
	// Kept is a Tracked answer's state for the source to keep until the
	// next poll.
	Kept *Live
	// Retry marks a Failed answer that was transient (after the call's
	// retries): the queue tries the row again later.
	Retry    bool
	Row      R
	Unknown  []transform.Unknown // unknown codes and values written as NULL
	Problems []string            // fields the decoder could not interpret
	// ResultCode, HTTPStatus and Attempts are the last answer's, for
	// failure records; Reason says why the row did not load.
	ResultCode string
	HTTPStatus int
	Attempts   int
	Reason     string
}

// Query asks about one item. The verdict tells the pool what the answer
// means for the run (see pool.Verdict); err describes a failure that may
// stop it.
type Query[R any] func(ctx context.Context, it Item) (Answer[R], pool.Verdict, error)

// Output is one of the run's outputs. Commit makes rows durable (they may
// be none) and reports how many files it made visible.
type Output[R any] interface {
	Name() string
	Commit(ctx context.Context, rows []R) (files int, err error)
}

// TxOutput is an output whose commit is a database transaction the ledgers
// that live in the same database join: the rows, the failure records and the
// queue's acknowledgement then commit or roll back together. also runs
// inside the transaction, with the output's transaction handle (opaque to
// the pipeline), and runs again when the output retries a transaction that
// conflicted. A run has at most one TxOutput; it commits after the others.
type TxOutput[R any] interface {
	Output[R]
	CommitWith(ctx context.Context, rows []R, also func(ctx context.Context, tx any) error) error
}

// FinalRowsOnly is an output that takes one row per call (append-only
// files): it skips a tracked call's interim states and takes the row made
// when the call ends.
type FinalRowsOnly interface {
	FinalRowsOnly()
}

// Holder is an output that can say which items' keys it already holds, so
// a rerun does not ask for them again. Lookups are batched (a database
// answers per round trip); an output may look at more than the key (the
// Parquet dataset of listed calls finds a call's partition in its
// listing, Item.Payload).
type Holder interface {
	Holds(ctx context.Context, items []Item) ([]bool, error)
}

// Settlement is how one row ended, for the ledgers.
type Settlement struct {
	Item    Item
	Outcome outcome.Outcome
	// Retry marks a transient failure (see Answer.Retry).
	Retry      bool
	ResultCode string
	HTTPStatus int
	Attempts   int
	Reason     string
	// Kept is a Tracked call's state to keep until its next poll.
	Kept *Live
}

// Code is what a failure record and the summary name the row's failure by:
// the business result code, else the HTTP status ("HTTP 503"); "" when
// neither says anything.
func (s Settlement) Code() string {
	switch {
	case s.ResultCode != "":
		return s.ResultCode
	case s.HTTPStatus != 0 && s.HTTPStatus != 200:
		return fmt.Sprintf("HTTP %d", s.HTTPStatus)
	}
	return ""
}

// Ledger records how rows ended: the queue's acknowledgement, the failure
// logs. Record gets every settlement of a batch, at every commit, after the
// outputs that are not transactional; tx is the TxOutput's transaction when
// InTx and there is one, else nil.
type Ledger interface {
	InTx() bool
	Record(ctx context.Context, tx any, settled []Settlement) error
}

// Confirmer is a Ledger that must hear whether the transaction (or
// statement) holding its Record committed: the queue keeps its rows leased
// until then.
type Confirmer interface {
	Confirm(settled []Settlement, committed bool)
}

// Config is one run. Zero values mean the documented default.
type Config[R any] struct {
	RunID  string
	Logger zerolog.Logger

	Source Source
	Query  Query[R]
	Pool   pool.Config
	// Outputs receive the loaded rows; at least one. At most one is a
	// TxOutput.
	Outputs []Output[R]
	Ledgers []Ledger
	// Requests reports the HTTP requests sent so far, for progress (may be
	// nil).
	Requests func() int64

	// Dedup settles a key seen earlier in the run as a duplicate. Right for
	// files; wrong for the queue, where a row retried within one run is
	// legitimately claimed again.
	Dedup bool
	// CommitRows and CommitInterval bound the work a crash can repeat: the
	// run commits when either is reached. Defaults 10,000 and 10s.
	CommitRows     int
	CommitInterval time.Duration
	// Grace is how long calls in flight may finish after an interrupt.
	// Default 0: they are cut off at once.
	Grace time.Duration
	// Lookahead is how many keys are looked up in the Holders at once.
	// Default 512.
	Lookahead int
	// CommitTimeout bounds one commit, so a hung database cannot hold the
	// output (and its lock) forever. Default 2 minutes.
	CommitTimeout time.Duration
	// CommitAllowance bounds the commits after an interrupt: whatever is
	// still committing Grace + CommitAllowance after the signal is cut off
	// and left for the next run, so a blocked database cannot keep a
	// stopping run alive past a service manager's stop timeout. Default
	// DefaultCommitAllowance.
	CommitAllowance time.Duration
	// Follow: the source waits for work instead of ending (a long-running
	// follower), so an interrupt is the run's normal end: Result.Err stays
	// nil when everything done was committed.
	Follow bool
	// OnCommit, when set, is called after each batch committed, from the
	// committer; it must not block (e.g. it signals a rolling run record).
	OnCommit func()
}

// Defaults of Config, declared once.
const (
	DefaultCommitRows     = 10000
	DefaultCommitInterval = 10 * time.Second
	DefaultLookahead      = 512
	DefaultCommitTimeout  = 2 * time.Minute
	// DefaultCommitAllowance: after an interrupt, commits may run until
	// Grace plus this.
	DefaultCommitAllowance = 15 * time.Second
)

// maxOutputs is how many outputs an item's need set can name.
const maxOutputs = 64

type outputSet uint64

func (s outputSet) has(i int) bool { return s&(1<<i) != 0 }

// Validate reports the first invalid field.
func (c Config[R]) Validate() error {
	txOutputs := 0
	for _, o := range c.Outputs {
		if o == nil {
			return errors.New("pipeline config: Outputs holds a nil output")
		}
		if _, ok := o.(TxOutput[R]); ok {
			txOutputs++
		}
	}
	switch {
	case c.Source == nil:
		return errors.New("pipeline config: Source is required")
	case c.Query == nil:
		return errors.New("pipeline config: Query is required")
	case len(c.Outputs) == 0:
		return errors.New("pipeline config: Outputs: at least one output is required")
	case len(c.Outputs) > maxOutputs:
		return fmt.Errorf("pipeline config: Outputs: %d outputs, at most %d", len(c.Outputs), maxOutputs)
	case txOutputs > 1:
		return fmt.Errorf("pipeline config: Outputs: %d transactional outputs, at most one", txOutputs)
	case c.CommitRows < 0 || c.CommitInterval < 0 || c.Grace < 0 || c.Lookahead < 0 || c.CommitTimeout < 0 || c.CommitAllowance < 0:
		return errors.New("pipeline config: CommitRows, CommitInterval, Grace, Lookahead, CommitTimeout and CommitAllowance must not be negative")
	}
	return c.Pool.Validate()
}

func (c Config[R]) withDefaults() Config[R] {
	if c.CommitRows == 0 {
		c.CommitRows = DefaultCommitRows
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.Lookahead == 0 {
		c.Lookahead = DefaultLookahead
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = DefaultCommitTimeout
	}
	if c.CommitAllowance == 0 {
		c.CommitAllowance = DefaultCommitAllowance
	}
	if c.Pool.Concurrency == 0 {
		c.Pool.Concurrency = pool.DefaultConcurrency
	}
	return c
}

// Result of a run.
type Result struct {
	Counts      outcome.Counts
	Unknown     []UnknownCode
	Started     time.Time
	Finished    time.Time
	Read        int64 // input rows read (Counts add up to it)
	Interrupted bool  // stopped by a signal
	Err         error // why the run aborted (nil when it finished)
	Files       int   // files the outputs made visible
	Problems    int64 // fields that could not be interpreted (NULL written)
	// Failures counts the committed failed and rejected rows by outcome and
	// code (Settlement.Code).
	Failures []FailureCode
}

// FailureCode is the number of rows that ended with one outcome and code.
type FailureCode struct {
	Outcome outcome.Outcome `json:"outcome"`
	Code    string          `json:"code"` // "" when neither a result code nor an HTTP status said why
	Count   int64           `json:"count"`
}

// Progress is a snapshot for progress displays.
type Progress struct {
	Read      int64          // input rows read
	InputDone bool           // the source is exhausted: Read is the final row count
	Settled   int64          // rows whose outcome is known (answered, failed, skipped), committed or not
	Done      int64          // rows committed (Counts.Total())
	Counts    outcome.Counts // committed rows by outcome
	Requests  int64          // HTTP attempts, retries included
	Problems  int64          // fields that could not be interpreted, so far
	Unknown   []UnknownCode  // codes missing from the code tables, so far
	Failures  []FailureCode  // committed failures by outcome and code
}

// Pipeline is one run in progress; Progress may be read while Run runs.
type Pipeline[R any] struct {
	cfg Config[R]
	// txOut is cfg.Outputs' transactional output, -1 when none.
	txOut int

	read      atomic.Int64
	settled   atomic.Int64
	problems  atomic.Int64
	inputDone atomic.Bool
	comm      atomic.Pointer[committer[R]]
	unknown   unknownCodes
}

// New checks cfg and prepares a run.
func New[R any](cfg Config[R]) (*Pipeline[R], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pipeline[R]{cfg: cfg.withDefaults(), txOut: -1}
	for i, o := range cfg.Outputs {
		if _, ok := o.(TxOutput[R]); ok {
			p.txOut = i
		}
	}
	return p, nil
}

// Progress is a snapshot of the run so far; safe to call from any
// goroutine while Run runs. At the end of a run Settled equals Read.
func (p *Pipeline[R]) Progress() Progress {
	pr := Progress{Read: p.read.Load(), InputDone: p.inputDone.Load(), Settled: p.settled.Load(), Counts: outcome.Counts{},
		Problems: p.problems.Load(), Unknown: p.unknown.list()}
	if c := p.comm.Load(); c != nil {
		pr.Counts, pr.Failures = c.snapshot()
		pr.Done = pr.Counts.Total()
	}
	if p.cfg.Requests != nil {
		pr.Requests = p.cfg.Requests()
	}
	return pr
}

// errInterrupted marks a stop requested by the operator.
var errInterrupted = errors.New("interrupted")

// errCommitCut marks a commit cut off by the bound after an interrupt.
var errCommitCut = errors.New("commit cut off")

// Run processes the source to its end or until ctx is cancelled (an
// interrupt): then it stops reading, lets calls in flight finish within
// Grace, commits what is done (within Grace + CommitAllowance) and returns.
// A Pipeline runs once.
func (p *Pipeline[R]) Run(ctx context.Context) Result {
	cfg := p.cfg
	res := Result{Started: time.Now(), Counts: outcome.Counts{}}

	// stopCtx ends reading; reqCtx ends calls in flight. An interrupt
	// cancels the first at once and the second after the grace period; a
	// fatal answer or a failed commit cancels both at once.
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
		t := time.NewTimer(cfg.Grace)
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
		t := time.NewTimer(cfg.Grace + cfg.CommitAllowance)
		defer t.Stop()
		select {
		case <-finished:
		case <-t.C:
			cutCommits(fmt.Errorf("%w: --grace %s plus %s for committing ran out after the interrupt", errCommitCut, cfg.Grace, cfg.CommitAllowance))
		}
	}()

	conc := cfg.Pool.Concurrency
	work := make(chan Item, 2*conc)
	if cfg.Follow {
		// A follower's source orders its rows (new calls before tracked
		// calls' polls): rows buffered ahead of the workers would wait behind
		// the rate limit and undo that order when the rate is short.
		work = make(chan Item)
	}
	direct := make(chan Settlement, 2*conc)
	results := make(chan pool.Done[Item, Answer[R]], 2*conc)

	var (
		srcErr, poolErr, sinkErr error
		coll                     collected
	)
	done := make(chan struct{}, 3)
	go func() {
		defer func() { done <- struct{}{} }()
		defer close(work)
		defer close(direct)
		srcErr = p.feed(stopCtx, work, direct)
		if srcErr != nil {
			abort(srcErr)
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		pc := cfg.Pool
		pc.Stop = func(err error) { stop(err) }
		pc.Halt = stopCtx
		poolErr = pool.Run(reqCtx, pc, pool.Call[Item, Answer[R]](cfg.Query), work, results)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		coll, sinkErr = p.collect(commitCtx, results, direct, abort)
	}()
	for range 3 {
		<-done
	}
	close(finished)

	res.Finished = time.Now()
	res.Read = p.read.Load()
	res.Counts = coll.counts
	res.Files = coll.files
	res.Problems = p.problems.Load()
	res.Failures = coll.failures.list()
	res.Unknown = p.unknown.list()
	res.Interrupted = ctx.Err() != nil
	switch {
	case sinkErr != nil && errors.Is(sinkErr, errCommitCut):
		res.Err = fmt.Errorf("%w; %d rows left for the next run", sinkErr, res.Counts[outcome.Unprocessed])
	case sinkErr != nil:
		res.Err = sinkErr
	case poolErr != nil:
		res.Err = poolErr
	case srcErr != nil:
		res.Err = srcErr
	case ctx.Err() != nil && !cfg.Follow:
		res.Err = fmt.Errorf("%w: stopped reading; %d rows left for the next run", errInterrupted, res.Counts[outcome.Unprocessed])
	}
	return res
}
