package adapters

import (
	"context"
	"errors"
	"sync"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/load"
)

// CSV is a CSV file as the pipeline's source. Its rows are read ahead by a
// goroutine, in small batches, so that a read blocked on a stalled pipe
// (csv:- fed by a producer that went quiet) never holds up an interrupt:
// Next returns as soon as ctx ends.
type CSV struct {
	// Dir resolves each row's direction from its isCallIn cell; set it
	// before the first Next.
	Dir Direction

	r     *csvsource.Reader
	once  sync.Once
	rows  chan csvBatch
	stop  chan struct{}
	ended chan struct{} // closed when the reading goroutine returned
	cur   []csvsource.Item
	err   error // sticky: io.EOF or the reader's error
}

type csvBatch struct {
	items []csvsource.Item
	err   error
}

// csvBatchRows is how many rows travel together from the reading goroutine.
const csvBatchRows = 64

// NewCSV reads r; Close it (not r) at the end.
func NewCSV(r *csvsource.Reader) *CSV {
	return &CSV{r: r, rows: make(chan csvBatch, 4), stop: make(chan struct{}), ended: make(chan struct{})}
}

func (s *CSV) read() {
	defer close(s.ended)
	for {
		b := csvBatch{items: make([]csvsource.Item, 0, csvBatchRows)}
		for len(b.items) < csvBatchRows {
			it, err := s.r.Next()
			if err != nil {
				b.err = err
				break
			}
			b.items = append(b.items, it)
			if s.r.RegularFile() == nil {
				break // a pipe: hand each row over rather than wait for more
			}
		}
		select {
		case s.rows <- b:
		case <-s.stop:
			return
		}
		if b.err != nil {
			return
		}
	}
}

func (s *CSV) Next(ctx context.Context) (pipeline.Item, error) {
	s.once.Do(func() { go s.read() })
	for len(s.cur) == 0 {
		if s.err != nil {
			return pipeline.Item{}, s.err
		}
		select {
		case <-ctx.Done():
			return pipeline.Item{}, ctx.Err()
		case b := <-s.rows:
			s.cur, s.err = b.items, b.err
		}
	}
	it := s.cur[0]
	s.cur = s.cur[1:]
	item := pipeline.Item{Line: it.Line, Key: it.Key, Raw: it.Raw, Err: it.Err}
	s.Dir.resolve(&item, it.Inbound)
	return item, nil
}

// Buffered is about how many rows Next returns without waiting; 0 when
// it would wait for the reader.
func (s *CSV) Buffered() int { return len(s.cur) + len(s.rows)*csvBatchRows }

// Close stops the reading and closes the file. A read blocked on standard
// input cannot be interrupted: its goroutine is left to the process's end.
func (s *CSV) Close() error {
	close(s.stop)
	if s.r.RegularFile() == nil {
		select {
		case <-s.ended:
		default:
			return nil // maybe blocked in a read of a pipe; stdin stays open anyway
		}
	}
	s.once.Do(func() { close(s.ended) }) // never started
	<-s.ended
	return s.r.Close()
}

// Queue is the queue as the pipeline's source and its acknowledgement: a
// Ledger that settles each row's queue status inside the warehouse's
// transaction when there is one, and a Confirmer that tells the consumer
// whether that transaction committed.
type Queue struct {
	C   *queue.Consumer
	Dir Direction // from the row's is_call_in
}

func (s Queue) Next(ctx context.Context) (pipeline.Item, error) {
	c, err := s.C.Next(ctx)
	if err != nil {
		return pipeline.Item{}, err
	}
	// Raw is only for the CSV's failure records: a queue row has none.
	it := pipeline.Item{Key: c.Key, EnqueuedAt: c.EnqueuedAt, Answered: c.NoDataAnswers > 0 || !c.LiveSince.IsZero()}
	if !c.LiveSince.IsZero() {
		it.Live = &pipeline.Live{Since: c.LiveSince, Last: c.LastAnswer, LastAt: c.LastAnswerAt}
	}
	if err := c.Key.Validate(); err != nil {
		it.Err = err
	}
	s.Dir.resolve(&it, c.Inbound)
	return it, nil
}

// Buffered is how many claimed rows Next returns without claiming again.
func (s Queue) Buffered() int { return s.C.Buffered() }

// InTx: the queue lives in the warehouse's database (DATABASE_URL).
func (Queue) InTx() bool { return true }

// Record settles the rows' queue statuses, through tx (a pgx.Tx) or, when
// nil, a statement of its own.
func (s Queue) Record(ctx context.Context, tx any, settled []pipeline.Settlement) error {
	outs := make([]queue.Outcome, 0, len(settled))
	for _, st := range settled {
		// Reasons and codes come from the API: stored like failure records.
		// The code names transport-level failures too ("HTTP 503"), so
		// `etl requeue --result-code "HTTP 503"` can target them.
		o := queue.Outcome{Key: st.Item.Key, Status: queueStatus(st), Error: load.CleanText(st.Reason), ResultCode: load.CleanText(st.Code())}
		if o.Status == queue.StatusTrack && st.Kept != nil {
			o.Answer, o.AnswerAt = st.Kept.Last, st.Kept.LastAt
		}
		outs = append(outs, o)
	}
	var db queue.Execer // nil: the consumer's pool
	if tx != nil {
		e, ok := tx.(queue.Execer)
		if !ok {
			return errors.New("settle queue rows: the transactional output's transaction is not a PostgreSQL one")
		}
		db = e
	}
	_, err := s.C.Settle(ctx, db, outs)
	return err
}

// queueStatus maps an outcome onto the queue's statuses.
func queueStatus(st pipeline.Settlement) string {
	switch st.Outcome {
	case outcome.Loaded, outcome.AlreadyLoaded, outcome.Duplicate:
		return queue.StatusDone
	case outcome.Tracked:
		return queue.StatusTrack
	case outcome.NoData:
		return queue.StatusNoData
	case outcome.Failed:
		if st.Retry {
			return queue.StatusRetry
		}
		return queue.StatusFailed
	case outcome.Rejected:
		return queue.StatusFailed
	}
	return queue.StatusRelease // unprocessed: the next run takes it
}

// Confirm tells the consumer whether the settlement committed.
func (s Queue) Confirm(settled []pipeline.Settlement, committed bool) {
	keys := make([]extract.Key, len(settled))
	for i, st := range settled {
		keys[i] = st.Item.Key
	}
	s.C.Settled(keys, committed)
}
