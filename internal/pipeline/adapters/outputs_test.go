package adapters

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/load/postgres"
)

// conflicting fails its first `conflicts` commits with err after running
// inTx, as PostgreSQL does when it picks the transaction as a deadlock
// victim. (A real deadlock is driven end to end by the command's queue
// tests; this drives each error kind.)
type conflicting struct {
	err       error
	conflicts int
	commits   int
	inTx      int
}

func (c *conflicting) Commit(ctx context.Context, rows []int, inTx func(context.Context, pgx.Tx) error) (postgres.UpsertStats, error) {
	c.commits++
	if inTx != nil {
		c.inTx++
		if err := inTx(ctx, nil); err != nil {
			return postgres.UpsertStats{}, err
		}
	}
	if c.commits <= c.conflicts {
		return postgres.UpsertStats{}, fmt.Errorf("commit %d rows: %w", len(rows), c.err)
	}
	return postgres.UpsertStats{Inserted: len(rows)}, nil
}

// Issue 9, defect 1: a commit that meets a deadlock or a serialization
// failure is retried as a whole transaction, the ledgers' part included;
// other errors are not.
func TestConflictingCommitIsRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		conflicts int
		commits   int
		ok        bool
	}{
		{"deadlock twice", &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}, 2, 3, true},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, 1, 2, true},
		{"deadlock every time", &pgconn.PgError{Code: "40P01"}, 99, commitAttempts, false},
		{"other database error", &pgconn.PgError{Code: "23505"}, 1, 1, false},
		{"connection lost", errors.New("unexpected EOF"), 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &conflicting{err: tt.err, conflicts: tt.conflicts}
			w := Warehouse[int]{Sink: c, Log: zerolog.Nop()}
			also := 0
			err := w.CommitWith(t.Context(), []int{1, 2, 3}, func(context.Context, any) error { also++; return nil })
			if (err == nil) != tt.ok {
				t.Fatalf("CommitWith = %v, want ok=%v", err, tt.ok)
			}
			if c.commits != tt.commits || also != tt.commits {
				t.Errorf("%d commits, the ledgers' part ran %d times; want %d each", c.commits, also, tt.commits)
			}
		})
	}
}
