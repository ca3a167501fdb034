package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/load"
)

// existingKeysChunk bounds the arrays of one ExistingKeys query (a few MB).
const existingKeysChunk = 50_000

// ExistingKeys reports which keys already have a row in the table, as
// digests. It sends the keys as arrays, one round trip per 50,000 keys.
// Invalid keys are never sent to CC-CMS, so they are never stored and are not
// looked up.
func (t *Table[R]) ExistingKeys(ctx context.Context, db Querier, keys []extract.Key) (map[extract.Digest]struct{}, error) {
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
			WHERE EXISTS (SELECT 1 FROM cms.`+t.Name+` c
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
	Status                            string    // running | succeeded | partial | aborted (abandoned is set by AbandonGoneRuns); StartRun writes "running" when empty
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
	if _, err := db.Exec(ctx, `INSERT INTO cms.etl_run (`+runColumns+`, updated_at) VALUES (`+runParams+`, now())`, args...); err != nil {
		return fmt.Errorf("start run %s: %w", r.ID, err)
	}
	return nil
}

// UpdateRun writes a running run's counts so far (a follower's rolling
// row: counts, rates, summary, updated_at); the row must still be running,
// so a late update never overwrites a final or abandoned row.
func UpdateRun(ctx context.Context, db Querier, r RunRecord) error {
	var summary any
	if r.Summary != nil {
		b, err := json.Marshal(r.Summary)
		if err != nil {
			return fmt.Errorf("update run %s: encode summary: %w", r.ID, err)
		}
		summary = b
	}
	_, err := db.Exec(ctx, `UPDATE cms.etl_run SET rows_read = $2, loaded = $3, no_data = $4, failed = $5,
			rejected = $6, duplicate = $7, achieved_rate = $8, summary = $9, updated_at = now()
		WHERE id = $1 AND status = 'running'`,
		r.ID, r.RowsRead, r.Loaded, r.NoData, r.Failed, r.Rejected, r.Duplicate, r.AchievedRate, summary)
	if err != nil {
		return fmt.Errorf("update run %s: %w", r.ID, err)
	}
	return nil
}

// FinishRun writes the run's final row. It inserts the row when StartRun did
// not (e.g. the database was unreachable at start), so a finished run is
// always recorded, and overwrites an 'abandoned' a later run set by mistake.
// A failure that may pass (a lost connection, a restarting or overloaded
// server, a conflict) is retried with backoff until ctx ends: the statement
// is idempotent, and a run that gives up stays 'running' until a later run
// marks it abandoned.
func FinishRun(ctx context.Context, db Querier, r RunRecord) error {
	args, err := runArgs(r)
	if err != nil {
		return fmt.Errorf("finish run %s: %w", r.ID, err)
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 3*time.Second) {
		err = finishRun(ctx, db, args)
		if err == nil || !mayPass(err) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if err != nil {
		return fmt.Errorf("finish run %s: %w", r.ID, err)
	}
	return nil
}

// mayPass reports an error that says nothing against the statement itself:
// a connection that failed or was lost, or a server-side condition of
// classes 08 (connection), 40 (rolled back), 53 (insufficient resources),
// 57 (operator intervention, e.g. a restart) or 58 (system error).
func mayPass(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return true // a network error
	}
	if len(pe.Code) != 5 {
		return false
	}
	switch pe.Code[:2] {
	case "08", "40", "53", "57", "58":
		return true
	}
	return false
}

func finishRun(ctx context.Context, db Querier, args []any) error {
	_, err := db.Exec(ctx, `INSERT INTO cms.etl_run (`+runColumns+`, updated_at) VALUES (`+runParams+`, now())
		ON CONFLICT (id) DO UPDATE SET updated_at = now(), host = EXCLUDED.host, version = EXCLUDED.version,
			input = EXCLUDED.input, outputs = EXCLUDED.outputs, started_at = EXCLUDED.started_at,
			finished_at = EXCLUDED.finished_at, status = EXCLUDED.status, rows_read = EXCLUDED.rows_read,
			loaded = EXCLUDED.loaded, no_data = EXCLUDED.no_data, failed = EXCLUDED.failed,
			rejected = EXCLUDED.rejected, duplicate = EXCLUDED.duplicate,
			configured_rate = EXCLUDED.configured_rate, achieved_rate = EXCLUDED.achieved_rate,
			summary = EXCLUDED.summary`, args...)
	return err
}

// RunLock is a run's proof of life: a session-level advisory lock keyed by
// the run id, held on a connection of its own for as long as the run lives.
// The server drops it when that session ends, however the run ends (kill -9,
// a crash of its host, a restart of the database). Take it before StartRun,
// so every row 'running' has a lock behind it while its run lives.
type RunLock struct {
	conn *pgx.Conn
	id   string
}

// runLockKey is the advisory lock key of a run id: 64 bits of FNV-1a, in
// the bigint key space (migrations' own lock is one fixed key there).
func runLockKey(id string) int64 {
	h := fnv.New64a()
	h.Write([]byte("cms-etl run " + id))
	return int64(h.Sum64())
}

// LockRun connects with cfg and takes run id's lock. It fails when another
// session holds it: a run with the same id is alive.
func LockRun(ctx context.Context, cfg *pgx.ConnConfig, id string) (*RunLock, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("lock run %s: connect: %w", id, err)
	}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", runLockKey(id)).Scan(&got); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("lock run %s: %w", id, err)
	}
	if !got {
		conn.Close(ctx)
		return nil, fmt.Errorf("lock run %s: a run with this id is running", id)
	}
	return &RunLock{conn: conn, id: id}, nil
}

// Release drops the lock and ends its session. Call it after FinishRun.
func (l *RunLock) Release(ctx context.Context) error {
	// Unlocked before the close, which the server handles asynchronously.
	_, err := l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", runLockKey(l.id))
	if cerr := l.conn.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("release run lock %s: %w", l.id, err)
	}
	return nil
}

// AbandonedRun is a run AbandonGoneRuns found gone.
type AbandonedRun struct {
	ID, Host  string
	StartedAt time.Time
}

// AbandonGoneRuns marks the rows of runs that are provably gone as
// 'abandoned', with finished_at now, and returns them: rows still 'running'
// whose run lock (see RunLock) this session can take, so no session holds it.
// A row is checked and marked while holding its lock, so a run starting with
// the same id cannot slip in between.
func AbandonGoneRuns(ctx context.Context, db *pgxpool.Pool) ([]AbandonedRun, error) {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("abandon gone runs: %w", err)
	}
	healthy := false
	defer func() {
		if !healthy {
			// It may still hold a run's lock: never hand it back to the pool.
			conn.Hijack().Close(context.WithoutCancel(ctx))
			return
		}
		conn.Release()
	}()
	rows, err := conn.Query(ctx, `SELECT id, coalesce(host, ''), started_at FROM cms.etl_run WHERE status = 'running' ORDER BY started_at`)
	if err != nil {
		return nil, fmt.Errorf("abandon gone runs: list running runs: %w", err)
	}
	running, err := pgx.CollectRows(rows, pgx.RowToStructByPos[AbandonedRun])
	if err != nil {
		return nil, fmt.Errorf("abandon gone runs: list running runs: %w", err)
	}
	var gone []AbandonedRun
	for _, r := range running {
		key := runLockKey(r.ID)
		var free bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&free); err != nil {
			return gone, fmt.Errorf("abandon gone runs: check run %s: %w", r.ID, err)
		}
		if !free {
			continue // alive
		}
		tag, err := conn.Exec(ctx, `UPDATE cms.etl_run SET status = 'abandoned', finished_at = now() WHERE id = $1 AND status = 'running'`, r.ID)
		if err != nil {
			return gone, fmt.Errorf("abandon gone runs: mark run %s: %w", r.ID, err)
		}
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", key); err != nil {
			return gone, fmt.Errorf("abandon gone runs: unlock run %s: %w", r.ID, err)
		}
		if tag.RowsAffected() == 1 {
			gone = append(gone, r)
		}
	}
	healthy = true
	return gone, nil
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
