package adapters

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/load"
	"github.com/cmsetl/cms-etl/load/postgres"
	"github.com/cmsetl/cms-etl/load/rejects"
)

// failures are the failure records of a batch's failed and rejected rows.
func failures(settled []pipeline.Settlement) []load.Failure {
	var out []load.Failure
	for _, s := range settled {
		if s.Outcome != outcome.Failed && s.Outcome != outcome.Rejected {
			continue
		}
		out = append(out, load.Failure{
			Line: s.Item.Line, Key: s.Item.Key, Raw: s.Item.Raw, Outcome: string(s.Outcome), Reason: s.Reason,
			ResultCode: s.ResultCode, HTTPStatus: s.HTTPStatus, Attempts: s.Attempts,
		})
	}
	return out
}

// Rejects writes failed and rejected rows to DIR/_rejects/<run>.csv.
type Rejects struct{ W *rejects.Writer }

func (Rejects) InTx() bool { return false }

func (r Rejects) Record(_ context.Context, _ any, settled []pipeline.Settlement) error {
	for _, f := range failures(settled) {
		if err := r.W.Add(f); err != nil {
			return err
		}
	}
	return r.W.Flush()
}

// FailureTable writes failed and rejected rows of CSV runs to
// cms.call_failure, inside the warehouse's transaction when there is one.
type FailureTable struct {
	DB    *pgxpool.Pool
	RunID string
}

func (FailureTable) InTx() bool { return true }

func (d FailureTable) Record(ctx context.Context, tx any, settled []pipeline.Settlement) error {
	rows := failures(settled)
	if len(rows) == 0 {
		return nil
	}
	var db postgres.Querier = d.DB
	if tx != nil {
		q, ok := tx.(postgres.Querier)
		if !ok {
			return errors.New("record failures: the transactional output's transaction is not a PostgreSQL one")
		}
		db = q
	}
	return postgres.RecordFailures(ctx, db, d.RunID, rows)
}
