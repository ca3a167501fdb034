package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cmsetl/cms-etl/internal/outcome"
)

// batch is what one commit makes durable: the rows for each output (by
// index in Config.Outputs) and every settlement.
type batch[R any] struct {
	rows    [][]R
	settled []Settlement
	// failures counts the failed and rejected settlements: each becomes a
	// failure record at the commit.
	failures int
}

func (b *batch[R]) add(s Settlement) {
	b.settled = append(b.settled, s)
	if s.Outcome == outcome.Failed || s.Outcome == outcome.Rejected {
		b.failures++
	}
}

func (b *batch[R]) full(commitRows int) bool {
	for _, rows := range b.rows {
		if len(rows) >= commitRows {
			return true
		}
	}
	// Settlements of rows that need no output (rejected, duplicate, already
	// loaded) are cheap to commit but not free to hold, failures least (each
	// becomes a failure record): a burst of bad input rows is committed in
	// small batches rather than piling up between two commits.
	return len(b.settled) >= 2*commitRows || b.failures >= max(commitRows/4, 1)
}

func (b *batch[R]) reset() {
	// Cleared so a recycled batch does not keep last commit's rows alive.
	for i := range b.rows {
		clear(b.rows[i])
		b.rows[i] = b.rows[i][:0]
	}
	clear(b.settled)
	b.settled = b.settled[:0]
	b.failures = 0
}

// committer makes batches durable one at a time in its own goroutine, so
// the collector keeps taking answers while a batch is written and synced
// instead of stalling the pool for the length of every commit. At most one
// batch commits while the next one fills.
type committer[R any] struct {
	p        *Pipeline[R]
	ctx      context.Context // cancelled only Grace + CommitAllowance after an interrupt
	abort    func(error)
	batches  chan *batch[R]
	free     chan *batch[R]
	finished chan struct{}
	failed   atomic.Bool

	mu  sync.Mutex // guards out and err
	out collected
	err error
}

func (p *Pipeline[R]) startCommitter(ctx context.Context, abort func(error)) *committer[R] {
	c := &committer[R]{
		p: p, ctx: ctx, abort: abort,
		batches:  make(chan *batch[R]),
		free:     make(chan *batch[R], 2),
		finished: make(chan struct{}),
		out:      collected{counts: outcome.Counts{}},
	}
	go c.run()
	return c
}

func (c *committer[R]) newBatch() *batch[R] {
	return &batch[R]{rows: make([][]R, len(c.p.cfg.Outputs))}
}

func (c *committer[R]) run() {
	defer close(c.finished)
	for b := range c.batches {
		c.commit(b)
		b.reset()
		c.free <- b
	}
}

func (c *committer[R]) commit(b *batch[R]) {
	if c.failed.Load() {
		c.count(b.settled, true)
		return
	}
	cctx, cancel := context.WithTimeout(c.ctx, c.p.cfg.CommitTimeout)
	files, err := c.p.commit(cctx, b)
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
	if err == nil && c.p.cfg.OnCommit != nil {
		c.p.cfg.OnCommit()
	}
}

// count settles a batch's rows: by outcome when committed, else as
// unprocessed (the next run takes them).
func (c *committer[R]) count(settled []Settlement, unprocessed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range settled {
		if unprocessed {
			c.out.counts[outcome.Unprocessed]++
			continue
		}
		c.out.counts[s.Outcome]++
		if s.Outcome == outcome.Failed || s.Outcome == outcome.Rejected {
			c.out.failures.add(s.Outcome, s.Code())
		}
	}
}

// submit hands b over for commit and returns an empty batch to fill next.
func (c *committer[R]) submit(b *batch[R]) *batch[R] {
	c.batches <- b
	select {
	case next := <-c.free:
		return next
	default:
		return c.newBatch()
	}
}

// snapshot copies the counts so far.
func (c *committer[R]) snapshot() (outcome.Counts, []FailureCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.counts.Clone(), c.out.failures.list()
}

// failureCodes counts failures by outcome and code; the committer's mutex
// guards it.
type failureCodes map[FailureCode]int64 // keys have Count 0

func (f *failureCodes) add(o outcome.Outcome, code string) {
	if *f == nil {
		*f = failureCodes{}
	}
	(*f)[FailureCode{Outcome: o, Code: code}]++
}

func (f failureCodes) list() []FailureCode {
	out := make([]FailureCode, 0, len(f))
	for k, n := range f {
		k.Count = n
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b FailureCode) int {
		return cmp.Or(cmp.Compare(a.Outcome, b.Outcome), cmp.Compare(a.Code, b.Code))
	})
	return out
}

// close waits for the last commit and returns the totals, with unprocessed
// more rows counted unprocessed (they arrived after a failed commit). The
// counts are added under the lock: Progress may be reading them.
func (c *committer[R]) close(unprocessed int64) (collected, error) {
	close(c.batches)
	<-c.finished
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.counts[outcome.Unprocessed] += unprocessed
	out := c.out
	out.counts = c.out.counts.Clone()
	return out, c.err
}

// commit makes one batch durable, in order: the outputs that are not
// transactional (files), the ledgers outside any transaction (the rejects
// file), then in one transaction the transactional output's rows and the
// ledgers that live in its database (failure records, the queue's
// acknowledgement). Without a transactional output those ledgers record on
// their own, after the files have the rows. Confirmers hear whether their
// record committed.
func (p *Pipeline[R]) commit(ctx context.Context, b *batch[R]) (files int, err error) {
	for i, o := range p.cfg.Outputs {
		if i == p.txOut {
			continue
		}
		n, err := o.Commit(ctx, b.rows[i])
		files += n
		if err != nil {
			return files, fmt.Errorf("commit %s: %w", o.Name(), err)
		}
	}
	var inTx []Ledger
	for _, l := range p.cfg.Ledgers {
		if l.InTx() && p.txOut >= 0 {
			inTx = append(inTx, l)
			continue
		}
		err := l.Record(ctx, nil, b.settled)
		confirm(l, b.settled, err == nil)
		if err != nil {
			return files, fmt.Errorf("record settlements: %w", err)
		}
	}
	if p.txOut < 0 {
		return files, nil
	}
	out := p.cfg.Outputs[p.txOut].(TxOutput[R])
	err = out.CommitWith(ctx, b.rows[p.txOut], func(ctx context.Context, tx any) error {
		for _, l := range inTx {
			if err := l.Record(ctx, tx, b.settled); err != nil {
				return fmt.Errorf("record settlements: %w", err)
			}
		}
		return nil
	})
	for _, l := range inTx {
		confirm(l, b.settled, err == nil)
	}
	if err != nil {
		return files, fmt.Errorf("commit %s: %w", out.Name(), err)
	}
	return files, nil
}

func confirm(l Ledger, settled []Settlement, committed bool) {
	if c, ok := l.(Confirmer); ok {
		c.Confirm(settled, committed)
	}
}
