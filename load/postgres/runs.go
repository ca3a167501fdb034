package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/load"
)

// existingKeysChunk bounds the arrays of one ExistingKeys query (a few MB).
const existingKeysChunk = 50_000

// ExistingKeys reports which keys already have a row in cms.call_info, as
// digests. It sends the keys as arrays, one round trip per 50,000 keys.
// Invalid keys are never sent to CC-CMS, so they are never stored and are not
// looked up.
func ExistingKeys(ctx context.Context, db Querier, keys []extract.Key) (map[extract.Digest]struct{}, error) {
	found := make(map[extract.Digest]struct{})
	ccIDs := make([]int32, 0, min(len(keys), existingKeysChunk))
	vdns := make([]int32, 0, cap(ccIDs))
	callIDs := make([]string, 0, cap(ccIDs))
	for start := 0; start < len(keys); start += existingKeysChunk {
		ccIDs, vdns, callIDs = ccIDs[:0], vdns[:0], callIDs[:0]
		for _, k := range keys[start:min(start+existingKeysChunk, len(keys))] {
			if k.Validate() != nil {
				continue
			}
			ccIDs = append(ccIDs, int32(k.CCID))
			vdns = append(vdns, int32(k.VDN))
			callIDs = append(callIDs, k.CallID)
		}
		if len(ccIDs) == 0 {
			continue
		}
		rows, err := db.Query(ctx, `
			SELECT k.cc_id, k.vdn, k.call_id
			FROM unnest($1::integer[], $2::integer[], $3::text[]) AS k(cc_id, vdn, call_id)
			WHERE EXISTS (SELECT 1 FROM cms.call_info c
			              WHERE c.cc_id = k.cc_id AND c.vdn = k.vdn AND c.call_id = k.call_id)`,
			ccIDs, vdns, callIDs)
		if err != nil {
			return nil, fmt.Errorf("look up existing keys: %w", err)
		}
		var k extract.Key
		var ccID, vdn int32
		_, err = pgx.ForEachRow(rows, []any{&ccID, &vdn, &k.CallID}, func() error {
			k.CCID, k.VDN = int(ccID), int(vdn)
			found[k.Digest()] = struct{}{}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("look up existing keys: %w", err)
		}
	}
	return found, nil
}

var failureColumns = []string{
	"run_id", "line", "cc_id", "vdn", "call_id", "raw_cc_id", "raw_vdn", "raw_call_id",
	"outcome", "reason", "result_code", "http_status", "attempts",
}

// RecordFailures copies rows into cms.call_failure for run runID. Each row
// is stored as its load.Failure.Clean copy, so no input byte can make
// PostgreSQL refuse the copy (and roll back the commit it belongs to).
func RecordFailures(ctx context.Context, db Querier, runID string, rows []load.Failure) error {
	if len(rows) == 0 {
		return nil
	}
	src := pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		f := rows[i].Clean()
		var ccID, vdn, callID any
		if f.Key.Validate() == nil {
			ccID, vdn, callID = int32(f.Key.CCID), int32(f.Key.VDN), f.Key.CallID
		}
		return []any{
			runID, nonZero(f.Line), ccID, vdn, callID,
			nonEmpty(f.Raw[0]), nonEmpty(f.Raw[1]), nonEmpty(f.Raw[2]),
			f.Outcome, nonEmpty(f.Reason), nonEmpty(f.ResultCode), nonZero(int32(f.HTTPStatus)), int32(f.Attempts),
		}, nil
	})
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"cms", "call_failure"}, failureColumns, src); err != nil {
		return fmt.Errorf("record %d failures of run %s: %w", len(rows), runID, err)
	}
	return nil
}

// RunRecord is one row of cms.etl_run.
type RunRecord struct {
	ID, Host, Version, Input, Outputs string
	StartedAt, FinishedAt             time.Time // zero FinishedAt: NULL
	Status                            string    // running | succeeded | partial | aborted; StartRun writes "running" when empty
	RowsRead, Loaded, NoData, Failed  int64
	Rejected, Duplicate               int64
	ConfiguredRate, AchievedRate      float64 // requests per second
	Summary                           any     // stored as JSON; nil: NULL
}

// StartRun inserts the run's row. A second StartRun with the same ID fails.
func StartRun(ctx context.Context, db Querier, r RunRecord) error {
	if r.Status == "" {
		r.Status = "running"
	}
	args, err := runArgs(r)
	if err != nil {
		return fmt.Errorf("start run %s: %w", r.ID, err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO cms.etl_run (`+runColumns+`) VALUES (`+runParams+`)`, args...); err != nil {
		return fmt.Errorf("start run %s: %w", r.ID, err)
	}
	return nil
}

// FinishRun writes the run's final row. It inserts the row when StartRun did
// not (e.g. the database was unreachable at start), so a finished run is
// always recorded.
func FinishRun(ctx context.Context, db Querier, r RunRecord) error {
	args, err := runArgs(r)
	if err != nil {
		return fmt.Errorf("finish run %s: %w", r.ID, err)
	}
	_, err = db.Exec(ctx, `INSERT INTO cms.etl_run (`+runColumns+`) VALUES (`+runParams+`)
		ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, version = EXCLUDED.version,
			input = EXCLUDED.input, outputs = EXCLUDED.outputs, started_at = EXCLUDED.started_at,
			finished_at = EXCLUDED.finished_at, status = EXCLUDED.status, rows_read = EXCLUDED.rows_read,
			loaded = EXCLUDED.loaded, no_data = EXCLUDED.no_data, failed = EXCLUDED.failed,
			rejected = EXCLUDED.rejected, duplicate = EXCLUDED.duplicate,
			configured_rate = EXCLUDED.configured_rate, achieved_rate = EXCLUDED.achieved_rate,
			summary = EXCLUDED.summary`, args...)
	if err != nil {
		return fmt.Errorf("finish run %s: %w", r.ID, err)
	}
	return nil
}

const (
	runColumns = `id, host, version, input, outputs, started_at, finished_at, status, rows_read, loaded,
		no_data, failed, rejected, duplicate, configured_rate, achieved_rate, summary`
	runParams = `$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17`
)

func runArgs(r RunRecord) ([]any, error) {
	if r.ID == "" {
		return nil, errors.New("run record: ID is required")
	}
	if r.StartedAt.IsZero() {
		return nil, errors.New("run record: StartedAt is required")
	}
	// Marshal here rather than leave it to pgx, which would take a string
	// Summary for JSON text instead of a JSON string.
	var summary any
	if r.Summary != nil {
		b, err := json.Marshal(r.Summary)
		if err != nil {
			return nil, fmt.Errorf("encode summary: %w", err)
		}
		summary = b
	}
	var finished any
	if !r.FinishedAt.IsZero() {
		finished = r.FinishedAt
	}
	return []any{
		r.ID, nonEmpty(r.Host), nonEmpty(r.Version), nonEmpty(r.Input), nonEmpty(r.Outputs),
		r.StartedAt, finished, r.Status, r.RowsRead, r.Loaded,
		r.NoData, r.Failed, r.Rejected, r.Duplicate, r.ConfiguredRate, r.AchievedRate, summary,
	}, nil
}

// nonEmpty maps "" to NULL.
func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nonZero maps 0 to NULL.
func nonZero[T int32 | int64](v T) any {
	if v == 0 {
		return nil
	}
	return v
}
