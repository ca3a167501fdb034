package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

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

// queueSource claims rows from cms.call_queue in batches, keeps their leases
// alive while they are in flight and settles them.
type queueSource struct {
	q        *queue.Queue
	db       *pgxpool.Pool
	log      zerolog.Logger
	lease    time.Duration
	batch    int
	maxItems int64
	deadline time.Time

	buf     []queue.Claimed
	claimed int64
	done    bool

	mu       sync.Mutex
	inflight map[extract.Key]struct{}
}

func newQueueSource(c *Config, db *pgxpool.Pool, log zerolog.Logger) (*queueSource, error) {
	host, _ := os.Hostname()
	q, err := queue.New(queue.Config{
		Pool: db, Owner: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), c.RunID), Lease: c.Lease,
		MaxAttempts: c.QueueMaxAttempt, Logger: log,
	})
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	s := &queueSource{
		q: q, db: db, log: log, lease: c.Lease, maxItems: c.MaxItems,
		batch:    max(4*c.Concurrency, 64),
		inflight: make(map[extract.Key]struct{}),
	}
	if c.MaxDuration > 0 {
		s.deadline = time.Now().Add(c.MaxDuration)
	}
	return s, nil
}

func (s *queueSource) Next(ctx context.Context) (job.Item, error) {
	for len(s.buf) == 0 {
		if s.done || (!s.deadline.IsZero() && time.Now().After(s.deadline)) {
			return job.Item{}, io.EOF
		}
		n := s.batch
		if s.maxItems > 0 {
			left := s.maxItems - s.claimed
			if left <= 0 {
				return job.Item{}, io.EOF
			}
			n = int(min(int64(n), left))
		}
		got, err := s.q.Claim(ctx, n)
		if err != nil {
			return job.Item{}, fmt.Errorf("claim queue batch: %w", err)
		}
		if len(got) == 0 {
			// Drained what is due; rows backing off are for a later run.
			s.done = true
			continue
		}
		s.claimed += int64(len(got))
		s.mu.Lock()
		for _, c := range got {
			s.inflight[c.Key] = struct{}{}
		}
		s.mu.Unlock()
		s.buf = got
	}
	c := s.buf[0]
	s.buf = s.buf[1:]
	// Raw is only for the CSV reject records: a queue run has none.
	it := job.Item{Key: c.Key}
	if err := c.Key.Validate(); err != nil {
		it.Err = err
	}
	return it, nil
}

// Release hands back rows claimed but never given to the job (the run
// stopped first), so the next run need not wait for their lease.
func (s *queueSource) Release(ctx context.Context) error {
	if len(s.buf) == 0 {
		return nil
	}
	outs := make([]queue.Outcome, len(s.buf))
	for i, c := range s.buf {
		outs[i] = queue.Outcome{Key: c.Key, Status: queue.StatusRelease}
	}
	if _, err := s.q.Settle(ctx, s.db, outs); err != nil {
		return fmt.Errorf("release %d claimed queue rows: %w", len(outs), err)
	}
	s.buf = nil
	return nil
}

// Settle marks the rows' queue status; inside tx when the warehouse gives one.
func (s *queueSource) Settle(ctx context.Context, tx pgx.Tx, settled []job.Settlement) error {
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
	var db queue.Execer = s.db
	if tx != nil {
		db = tx
	}
	if _, err := s.q.Settle(ctx, db, outs); err != nil {
		return err
	}
	s.mu.Lock()
	for _, st := range settled {
		delete(s.inflight, st.Item.Key)
	}
	s.mu.Unlock()
	return nil
}

// extendLeases keeps claimed rows from expiring while they wait or are in flight.
func (s *queueSource) extendLeases(ctx context.Context) {
	t := time.NewTicker(s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		keys := make([]extract.Key, 0, len(s.inflight))
		for k := range s.inflight {
			keys = append(keys, k)
		}
		s.mu.Unlock()
		if len(keys) == 0 {
			continue
		}
		if err := s.q.Extend(ctx, keys); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn().Err(err).Int("rows", len(keys)).Msg("extend queue leases")
		}
	}
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
		found, err := postgres.ExistingKeys(ctx, s.db, keys)
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
type warehouse struct{ s *postgres.Sink }

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
