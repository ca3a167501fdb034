package adapters

import (
	"context"
	"errors"
	"fmt"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/load"
)

// CSV is a CSV file as the pipeline's source.
type CSV struct {
	R   *csvsource.Reader
	Dir Direction // from the isCallIn column
}

func (s CSV) Next(ctx context.Context) (pipeline.Item, error) {
	if err := ctx.Err(); err != nil {
		return pipeline.Item{}, err
	}
	it, err := s.R.Next()
	if err != nil {
		return pipeline.Item{}, err
	}
	item := pipeline.Item{Line: it.Line, Key: it.Key, Raw: it.Raw, Err: it.Err}
	s.Dir.resolve(&item, it.Inbound)
	return item, nil
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
	it := pipeline.Item{Key: c.Key}
	if err := c.Key.Validate(); err != nil {
		it.Err = err
	}
	s.Dir.resolve(&it, c.Inbound)
	return it, nil
}

// InTx: the queue lives in the warehouse's database (DATABASE_URL).
func (Queue) InTx() bool { return true }

// Record settles the rows' queue statuses, through tx (a pgx.Tx) or, when
// nil, a statement of its own.
func (s Queue) Record(ctx context.Context, tx any, settled []pipeline.Settlement) error {
	outs := make([]queue.Outcome, 0, len(settled))
	for _, st := range settled {
		// Reasons and codes come from the API: stored like failure records.
		o := queue.Outcome{Key: st.Item.Key, Status: queueStatus(st), Error: load.CleanText(st.Reason), ResultCode: load.CleanText(st.ResultCode)}
		if o.ResultCode == "" && st.HTTPStatus != 0 && st.HTTPStatus != 200 {
			// So `etl requeue --result-code "HTTP 503"` can target transport-level failures.
			o.ResultCode = fmt.Sprintf("HTTP %d", st.HTTPStatus)
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
