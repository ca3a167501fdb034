package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/cmd/etl/internal/job"
	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/csvsource"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/load"
	"github.com/cmsetl/cms-etl/load/postgres"
	"github.com/cmsetl/cms-etl/load/rejects"
	"github.com/cmsetl/cms-etl/transform"
)

// csvSource adapts the CSV reader to job.Source.
type csvSource struct{ r *csvsource.Reader }

func (s csvSource) Next(ctx context.Context) (job.Item, error) {
	if err := ctx.Err(); err != nil {
		return job.Item{}, err
	}
	it, err := s.r.Next()
	if err != nil {
		return job.Item{}, err
	}
	return job.Item{Line: it.Line, Key: it.Key, Raw: it.Raw, Err: it.Err}, nil
}

// queueSource adapts the queue consumer to job.Source and job.Acknowledger:
// it maps job outcomes onto queue statuses.
type queueSource struct{ c *queue.Consumer }

func newQueueSource(ctx context.Context, c *Config, db *pgxpool.Pool, log zerolog.Logger) (queueSource, error) {
	host, _ := os.Hostname()
	qc, err := queue.NewConsumer(ctx, queue.Config{
		Pool: db, Owner: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), c.RunID), Lease: c.Lease,
		MaxAttempts: c.QueueMaxAttempt, Logger: log,
		ClaimBatch: max(4*c.Concurrency, 64), MaxItems: c.MaxItems, MaxDuration: c.MaxDuration,
	})
	if err != nil {
		return queueSource{}, &UsageError{Err: err}
	}
	return queueSource{qc}, nil
}

func (s queueSource) Next(ctx context.Context) (job.Item, error) {
	c, err := s.c.Next(ctx)
	if err != nil {
		return job.Item{}, err
	}
	// Raw is only for the CSV reject records: a queue run has none.
	it := job.Item{Key: c.Key}
	if err := c.Key.Validate(); err != nil {
		it.Err = err
	}
	return it, nil
}

// Settle marks the rows' queue status; inside tx when the warehouse gives one.
func (s queueSource) Settle(ctx context.Context, tx pgx.Tx, settled []job.Settlement) error {
	outs := make([]queue.Outcome, 0, len(settled))
	for _, st := range settled {
		// Reasons and codes come from the API: stored like failure records.
		o := queue.Outcome{Key: st.Item.Key, Error: load.CleanText(st.Reason), ResultCode: load.CleanText(st.Result.ResultCode)}
		if o.ResultCode == "" && st.Result.HTTPStatus != 0 && st.Result.HTTPStatus != 200 {
			// So `etl requeue --result-code "HTTP 503"` can target transport-level failures.
			o.ResultCode = fmt.Sprintf("HTTP %d", st.Result.HTTPStatus)
		}
		switch st.Outcome {
		case job.Loaded, job.AlreadyLoaded, job.Duplicate:
			o.Status = queue.StatusDone
		case job.NoData:
			o.Status = queue.StatusNoData
		case job.Rejected:
			o.Status = queue.StatusFailed
		case job.Failed:
			o.Status = queue.StatusFailed
			if st.Result.Class == cms.ClassTransient {
				o.Status = queue.StatusRetry
			}
		case job.Unprocessed:
			o.Status = queue.StatusRelease
		}
		outs = append(outs, o)
	}
	var db queue.Execer // nil: the consumer's pool
	if tx != nil {
		db = tx
	}
	_, err := s.c.Settle(ctx, db, outs)
	return err
}

func (s queueSource) Settled(settled []job.Settlement, committed bool) {
	keys := make([]extract.Key, len(settled))
	for i, st := range settled {
		keys[i] = st.Item.Key
	}
	s.c.Settled(keys, committed)
}

// skipper answers which outputs already hold a key.
type skipper struct {
	parquet *extract.DigestSet
	db      *pgxpool.Pool
}

func (s *skipper) Present(ctx context.Context, keys []extract.Key) (inPq, inWh []bool, err error) {
	digests := make([]extract.Digest, len(keys)) // hashed once for both lookups
	for i, k := range keys {
		digests[i] = k.Digest()
	}
	inPq = make([]bool, len(keys))
	inWh = make([]bool, len(keys))
	if s.parquet != nil {
		for i, d := range digests {
			inPq[i] = s.parquet.Has(d)
		}
	}
	if s.db != nil {
		found, err := postgres.CallInfo.ExistingKeys(ctx, s.db, keys)
		if err != nil {
			return nil, nil, err
		}
		for i, d := range digests {
			_, inWh[i] = found[d]
		}
	}
	return inPq, inWh, nil
}

// warehouse adapts the Postgres sink to job.WarehouseSink.
type warehouse struct{ s *postgres.Sink[transform.Row] }

func (w warehouse) Commit(ctx context.Context, rows []transform.Row, inTx func(context.Context, pgx.Tx) error) error {
	_, err := w.s.Commit(ctx, rows, inTx)
	return err
}

// failureOf is the failure record of a failed or rejected row.
func failureOf(s job.Settlement) load.Failure {
	return load.Failure{
		Line: s.Item.Line, Key: s.Item.Key, Raw: s.Item.Raw, Outcome: string(s.Outcome), Reason: s.Reason,
		ResultCode: s.Result.ResultCode, HTTPStatus: s.Result.HTTPStatus, Attempts: s.Result.Attempts,
	}
}

// rejectsLog writes failed and rejected rows to DIR/_rejects/<run>.csv.
type rejectsLog struct{ w *rejects.Writer }

func (r rejectsLog) Record(_ context.Context, _ pgx.Tx, failed []job.Settlement) error {
	for _, s := range failed {
		if err := r.w.Add(failureOf(s)); err != nil {
			return err
		}
	}
	return r.w.Flush()
}

// dbFailureLog writes failed and rejected rows of CSV runs to cms.call_failure.
type dbFailureLog struct {
	db    *pgxpool.Pool
	runID string
}

func (d *dbFailureLog) Record(ctx context.Context, tx pgx.Tx, failed []job.Settlement) error {
	if len(failed) == 0 {
		return nil
	}
	rows := make([]load.Failure, len(failed))
	for i, s := range failed {
		rows[i] = failureOf(s)
	}
	var db postgres.Querier = d.db
	if tx != nil {
		db = tx
	}
	return postgres.RecordFailures(ctx, db, d.runID, rows)
}
