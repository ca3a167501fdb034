package adapters

import (
	"context"
	"errors"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/load"
)

// CSV is a CSV file as the pipeline's source.
type CSV struct{ R *csvsource.Reader }

func (s CSV) Next(ctx context.Context) (pipeline.Item, error) {
	if err := ctx.Err(); err != nil {
		return pipeline.Item{}, err
	}
	it, err := s.R.Next()
	if err != nil {
		return pipeline.Item{}, err
	}
	return pipeline.Item{Line: it.Line, Key: it.Key, Raw: it.Raw, Err: it.Err}, nil
}

// Queue is the queue as the pipeline's source and its acknowledgement: a
// Ledger that settles each row's queue status inside the warehouse's
// transaction when there is one, and a Confirmer that tells the consumer
// whether that transaction committed.
type Queue struct{ C *queue.Consumer }

func (s Queue) Next(ctx context.Context) (pipeline.Item, error) {
	c, err := s.C.Next(ctx)
	if err != nil {
		return pipeline.Item{}, err
	}
	// Raw is only for the CSV's failure records: a queue row has none.
	it := pipeline.Item{Key: c.Key, EnqueuedAt: c.EnqueuedAt, Answered: c.NoDataAnswers > 0 || !c.LiveSince.IsZero()}
	if c.Inbound != nil {
		it.Inbound = *c.Inbound
	}
	if !c.LiveSince.IsZero() {
		it.Live = &pipeline.Live{Since: c.LiveSince, Last: c.LastAnswer, LastAt: c.LastAnswerAt}
	}
	if err := c.Key.Validate(); err != nil {
		it.Err = err
	}
	return it, nil
}

// Buffered reports whether the next row is claimed already (see
// pipeline.Waiter): a follower's Next may wait for new work.
func (s Queue) Buffered() bool { return s.C.Buffered() }

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
