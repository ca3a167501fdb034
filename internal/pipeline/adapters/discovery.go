package adapters

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/extract/discover"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/transform"
)

// Discovery is a discovery (extract/discover) as the pipeline's source: each
// call of a slice becomes an item in the direction the discovery kept (the
// inbound one for a call both passes listed), carrying its listing
// (Payload, a discover.Call) for ListedQuery. Start runs the discovery in its own goroutine; Stop ends it
// and Result reports it.
type Discovery struct {
	cfg    discover.Config
	lister discover.Lister
	items  chan pipeline.Item
	done   chan struct{}
	cancel context.CancelFunc // nil until Start

	res discover.Result // set before items is closed
	err error

	covered atomic.Int64 // nanoseconds of VDN and direction windows accepted
	calls   atomic.Int64 // calls handed to the pipeline
	unsent  atomic.Int64 // calls of the slice being emitted not yet in items
}

// NewDiscovery prepares the discovery of cfg's calls through l; nothing is
// asked before Start.
func NewDiscovery(cfg discover.Config, l discover.Lister) *Discovery {
	return &Discovery{cfg: cfg, lister: l, items: make(chan pipeline.Item, 2*discover.PageLimit), done: make(chan struct{})}
}

// Start starts the discovery; it ends with ctx, at Stop, or when it is
// done. Call it once.
func (d *Discovery) Start(ctx context.Context) {
	ctx, d.cancel = context.WithCancel(ctx)
	go func() {
		defer close(d.done)
		res, err := discover.Run(ctx, d.cfg, d.lister, d.emit)
		d.res, d.err = res, err
		close(d.items)
	}()
}

// emit hands a slice's calls over, one at a time: the pipeline's reading
// paces the discovery.
func (d *Discovery) emit(ctx context.Context, s discover.Slice) error {
	d.unsent.Store(int64(len(s.Calls)))
	defer d.unsent.Store(0)
	for _, c := range s.Calls {
		select {
		case d.items <- pipeline.Item{Key: c.Key, Inbound: c.Inbound, Payload: c}:
			d.calls.Add(1)
			d.unsent.Add(-1)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d.covered.Add(int64(s.Covered))
	return nil
}

// Next returns the next discovered call, io.EOF when the discovery is done,
// or the error that stopped it (a fatal answer).
func (d *Discovery) Next(ctx context.Context) (pipeline.Item, error) {
	select {
	case it, ok := <-d.items:
		if ok {
			return it, nil
		}
		if d.err != nil {
			return pipeline.Item{}, fmt.Errorf("discover calls: %w", d.err)
		}
		return pipeline.Item{}, io.EOF
	case <-ctx.Done():
		return pipeline.Item{}, ctx.Err()
	}
}

// Buffered is how many calls Next returns without waiting for another
// slice: the rest of the slice being handed over. The pipeline commits what
// it holds when the discovery is between slices.
func (d *Discovery) Buffered() int { return int(d.unsent.Load()) + len(d.items) }

// Covered is how much of the windows (one per VDN and direction) accepted
// slices cover so far, and how many calls they held: for progress.
func (d *Discovery) Covered() (time.Duration, int64) {
	return time.Duration(d.covered.Load()), d.calls.Load()
}

// Stop ends the discovery if it still runs and waits for it; a discovery
// never started stays so.
func (d *Discovery) Stop() {
	if d.cancel == nil {
		return
	}
	d.cancel()
	<-d.done
}

// Result returns, after Stop, the discovery's reconciliation and the error
// that stopped it: nil when it finished, a fatal answer, or the context's
// error when it was stopped.
func (d *Discovery) Result() (discover.Result, error) {
	if d.cancel == nil {
		return discover.Result{}, errors.New("discovery not started")
	}
	<-d.done
	return d.res, d.err
}

// ListedQuery makes the cms.call_record row of a discovered call from its
// listing: no request, the listing is the answer.
func ListedQuery(runID string) pipeline.Query[transform.CallRecordRow] {
	return func(_ context.Context, it pipeline.Item) (pipeline.Answer[transform.CallRecordRow], pool.Verdict, error) {
		c, ok := it.Payload.(discover.Call)
		if !ok {
			err := fmt.Errorf("discovered call %s carries no listing", it.Key)
			return pipeline.Answer[transform.CallRecordRow]{Outcome: outcome.Rejected, Reason: err.Error()}, pool.Fatal, err
		}
		a := pipeline.Answer[transform.CallRecordRow]{Outcome: outcome.Loaded, Attempts: 1}
		a.Row, a.Unknown = transform.ToCallRecordRow(transform.CallRecordInput{Key: c.Key, Record: c.Record, Raw: c.Raw,
			Inbound: c.Inbound, BothDirections: c.BothDirections, FetchedAt: c.FetchedAt, RunID: runID})
		if c.Record != nil {
			a.Problems = c.Record.Problems
		}
		return a, pool.Answered, nil
	}
}

// ListedPartition names the partition of the call_record dataset a
// discovered call's row goes to: that of the row ListedQuery makes of it
// (parquet.PartitionForListed), for NewPartitionedParquet.
func ListedPartition(it pipeline.Item) (string, error) {
	c, ok := it.Payload.(discover.Call)
	if !ok {
		return "", fmt.Errorf("discovered call %s carries no listing", it.Key)
	}
	row, _ := transform.ToCallRecordRow(transform.CallRecordInput{Key: c.Key, Record: c.Record})
	return parquet.PartitionForListed(&row), nil
}

// Enqueue is the ledger of etl discover --enqueue: the calls a commit holds
// (loaded, or already held by every output from an earlier run) go into
// cms.call_queue for each of Queries, with their direction, inside the
// warehouse's transaction when there is one. So a call is queued exactly
// when its row commits, and a rerun after a crash between the two queues
// what the crash left out (queueing is idempotent).
type Enqueue struct {
	DB      *pgxpool.Pool
	Queries []string

	mu      sync.Mutex
	pending map[string]queue.Added // the batch being committed
	added   map[string]queue.Added // committed batches
}

func (*Enqueue) InTx() bool { return true }

// Record queues the batch's calls through tx (a pgx.Tx) or, when nil, a
// statement of its own.
func (e *Enqueue) Record(ctx context.Context, tx any, settled []pipeline.Settlement) error {
	entries := make([]queue.Entry, 0, len(settled))
	for _, s := range settled {
		if s.Outcome != outcome.Loaded && s.Outcome != outcome.AlreadyLoaded {
			continue
		}
		in := s.Item.Inbound
		entries = append(entries, queue.Entry{Key: s.Item.Key, Inbound: &in})
	}
	var db queue.Querier = e.DB
	if tx != nil {
		q, ok := tx.(queue.Querier)
		if !ok {
			return errors.New("queue discovered calls: the transactional output's transaction is not a PostgreSQL one")
		}
		db = q
	}
	added, err := queue.Add(ctx, db, e.Queries, entries)
	if err != nil {
		return err
	}
	// A transaction that conflicted runs Record again: the last run's
	// counts are the batch's.
	e.mu.Lock()
	e.pending = added
	e.mu.Unlock()
	return nil
}

// Confirm counts the batch when its transaction committed.
func (e *Enqueue) Confirm(_ []pipeline.Settlement, committed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.added == nil {
		e.added = map[string]queue.Added{}
	}
	for _, q := range e.Queries {
		a := e.added[q]
		if p, ok := e.pending[q]; ok && committed {
			a.Inserted += p.Inserted
			a.Queued += p.Queued
		}
		e.added[q] = a
	}
	e.pending = nil
}

// Added is what the committed batches queued, per query.
func (e *Enqueue) Added() map[string]queue.Added {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]queue.Added, len(e.Queries))
	for _, q := range e.Queries {
		out[q] = e.added[q]
	}
	return out
}
