// Package queue reads call keys from the Postgres work queue cms.call_queue
// (created by package migrations).
//
// Producers insert keys; a worker Claims a batch (each row leased to it for
// Lease), fetches the calls, and Settles each row as done, no_data, failed or
// retry. Every statement is its own short transaction: nothing is held open
// across an HTTP call. A worker that dies leaves its rows running until the
// lease ends; then any worker may claim them again. Settle and Extend touch
// only rows still leased to the caller, so a slow worker cannot overwrite
// the result of a worker that re-claimed its row. When the warehouse is the
// same database, Settle runs inside the sink's transaction so rows are marked
// done exactly when their data commits. A Consumer does all of this for one
// run (see consumer.go).
//
// Lock order: Claim locks only rows nobody holds (SKIP LOCKED); Settle,
// Extend and Requeue lock the rows they change in primary-key order before
// changing them, and Extend skips rows another transaction holds (a
// settlement in progress). Two of these statements therefore never wait on
// each other in a cycle: the settlement of a commit and the lease extender
// of the same run cannot deadlock, whatever else the commit's transaction
// holds.
package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
)

// Config configures a Queue.
type Config struct {
	// Pool is the database holding cms.call_queue. Required.
	Pool *pgxpool.Pool
	// Owner identifies this worker in locked_by; use host:pid:runid. Required.
	Owner string
	// Lease is how long a claim lasts before another worker may take the row;
	// Extend renews it. Default 1m.
	Lease time.Duration
	// MaxAttempts is how many claims a row gets: a retry outcome on the last
	// one, or a lease that expires on it, makes the row failed. Default 5.
	MaxAttempts int
	// BackoffBase and BackoffCap bound the delay before a retried row is due
	// again: uniformly random in [0, min(BackoffCap, BackoffBase*2^(attempts-1))]
	// ("full jitter"). Defaults 30s and 1h.
	BackoffBase, BackoffCap time.Duration
	// Logger receives debug lines. Zero value: discard.
	Logger zerolog.Logger

	// Query selects the rows this worker asks about: QueryBasic (the
	// default, querybasiccallinfo) or QueryCDR (querycalldetailbyid).
	Query string
	// TrackEvery, when positive, keeps a call that answered live in the
	// queue: it is asked again this long after each live answer, until it
	// answers "no data" (it ended) or TrackMax has passed since its first
	// live answer. 0: one live answer per call.
	TrackEvery time.Duration
	// TrackMax bounds how long a call is tracked. Default 2h.
	TrackMax time.Duration
	// NoDataRetries is how many more times a call that answered "no data"
	// is asked while it is recent (started within NoDataWindow, by its
	// callId): asked right after it started, it may not be visible yet.
	// After them, or for an older call, "no data" is final. Default 2;
	// negative: never.
	NoDataRetries int
	// NoDataWindow: a call that started longer ago than this is not asked
	// again after "no data". Default 5m.
	NoDataWindow time.Duration
	// NoDataDelay is the wait before a no-data retry. Default 10s.
	NoDataDelay time.Duration

	// ClaimBatch is how many rows a Consumer claims at once. Default 64.
	ClaimBatch int
	// MaxItems stops a Consumer claiming after this many rows; 0: no bound.
	MaxItems int64
	// MaxDuration stops a Consumer claiming this long after it started; 0:
	// no bound.
	MaxDuration time.Duration

	// Follow makes a Consumer wait for work instead of ending when nothing
	// is due (a long-running follower): a dedicated connection LISTENs on
	// NotifyChannel, which a trigger notifies on every insert, and the
	// Consumer claims again when woken, when PollInterval has passed, or
	// when the next row it knows of falls due (a tracked call's next poll,
	// a retry), whichever comes first. The poll keeps it correct while the
	// listener is disconnected (notifications are lost then).
	Follow bool
	// PollInterval is the longest a follower waits between claims. Default
	// 1s.
	PollInterval time.Duration
	// MaxDatabaseOutage is how long a follower keeps trying to claim while
	// the database fails, before its Next returns the error (the run
	// aborts). Default 1m.
	MaxDatabaseOutage time.Duration
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("queue config: Pool is required")
	case c.Owner == "":
		return errors.New("queue config: Owner is required")
	case c.Lease < 0:
		return fmt.Errorf("queue config: Lease %v is negative", c.Lease)
	case c.MaxAttempts < 0:
		return fmt.Errorf("queue config: MaxAttempts %d is negative", c.MaxAttempts)
	case c.BackoffBase < 0:
		return fmt.Errorf("queue config: BackoffBase %v is negative", c.BackoffBase)
	case c.BackoffCap < 0:
		return fmt.Errorf("queue config: BackoffCap %v is negative", c.BackoffCap)
	case c.ClaimBatch < 0:
		return fmt.Errorf("queue config: ClaimBatch %d is negative", c.ClaimBatch)
	case c.MaxItems < 0:
		return fmt.Errorf("queue config: MaxItems %d is negative", c.MaxItems)
	case c.MaxDuration < 0:
		return fmt.Errorf("queue config: MaxDuration %v is negative", c.MaxDuration)
	case c.Query != "" && CheckQuery(c.Query) != nil:
		return fmt.Errorf("queue config: Query: %w", CheckQuery(c.Query))
	case c.TrackEvery < 0 || c.TrackMax < 0:
		return errors.New("queue config: TrackEvery and TrackMax must not be negative")
	case c.NoDataWindow < 0 || c.NoDataDelay < 0:
		return errors.New("queue config: NoDataWindow and NoDataDelay must not be negative")
	case c.PollInterval < 0 || c.MaxDatabaseOutage < 0:
		return errors.New("queue config: PollInterval and MaxDatabaseOutage must not be negative")
	}
	c = c.withDefaults()
	if c.BackoffCap < c.BackoffBase {
		return fmt.Errorf("queue config: BackoffCap %v is below BackoffBase %v", c.BackoffCap, c.BackoffBase)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Lease == 0 {
		c.Lease = time.Minute
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = 30 * time.Second
	}
	if c.BackoffCap == 0 {
		c.BackoffCap = time.Hour
	}
	if c.ClaimBatch == 0 {
		c.ClaimBatch = 64
	}
	if c.Query == "" {
		c.Query = QueryBasic
	}
	if c.TrackMax == 0 {
		c.TrackMax = DefaultTrackMax
	}
	if c.NoDataRetries == 0 {
		c.NoDataRetries = DefaultNoDataRetries
	}
	if c.NoDataWindow == 0 {
		c.NoDataWindow = DefaultNoDataWindow
	}
	if c.NoDataDelay == 0 {
		c.NoDataDelay = DefaultNoDataDelay
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxDatabaseOutage == 0 {
		c.MaxDatabaseOutage = DefaultMaxDatabaseOutage
	}
	return c
}

// Queries a row can name (cms.call_queue.query).
const (
	QueryBasic = "basic" // querybasiccallinfo: the call while it is live
	QueryCDR   = "cdr"   // querycalldetailbyid: the CDR of a finished call
)

// CheckQuery returns an error naming q unless it is QueryBasic or QueryCDR
// (the values cms.call_queue's check constraint allows).
func CheckQuery(q string) error {
	if q == QueryBasic || q == QueryCDR {
		return nil
	}
	return fmt.Errorf("query %q is not %s or %s", q, QueryBasic, QueryCDR)
}

// Defaults of Config, declared once.
const (
	DefaultTrackMax      = 2 * time.Hour
	DefaultNoDataRetries = 2
	DefaultNoDataWindow  = 5 * time.Minute
	DefaultNoDataDelay   = 10 * time.Second
	// DefaultPollInterval: a follower claims at least this often.
	DefaultPollInterval      = time.Second
	DefaultMaxDatabaseOutage = time.Minute
)

// NotifyChannel is the channel the queue's insert trigger notifies
// (migration 008): followers LISTEN on it.
const NotifyChannel = "cms_call_queue"

// Queue is one worker's handle on cms.call_queue. It is safe for concurrent
// use.
type Queue struct {
	cfg Config
	log zerolog.Logger
}

// New returns a Queue for cfg.
func New(cfg Config) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Queue{cfg: cfg, log: cfg.Logger}, nil
}

// Claimed is a row leased to this worker.
type Claimed struct {
	Key      extract.Key
	Inbound  *bool // the call's direction when known (cdr rows)
	Attempts int   // claims so far, this one included
	// EnqueuedAt is when the producer inserted the row.
	EnqueuedAt time.Time
	// NoDataAnswers counts the "no data" answers so far (the call was
	// asked early; see Config.NoDataRetries).
	NoDataAnswers int
	// LiveSince is when a tracked call first answered live (zero when the
	// call is not tracked); LastAnswer is its last live answer, from which
	// its final row is made when tracking ends.
	LiveSince    time.Time
	LastAnswer   json.RawMessage
	LastAnswerAt time.Time
}

// Claimable rows are pending and due, or running with an expired lease. A
// claim or Extend sets available_at to the lease end along with locked_until,
// so both kinds are "available_at <= now()": one range on the partial index,
// read in order, instead of a scan and sort of every live row.
const claimable = `query = $5 AND status IN ('pending', 'running') AND available_at <= now()
	AND (status = 'pending' OR locked_until <= now())`

// claimSQL picks rows in a CTE and then updates them: the
// "WHERE key IN (SELECT ... FOR UPDATE SKIP LOCKED)" form can update more
// than LIMIT rows under concurrency. A row whose lease expired on its last
// allowed claim (its worker kept dying on it) becomes failed instead of
// running again, so a poison row cannot loop forever.
const claimSQL = `
WITH picked AS (
	SELECT cc_id, vdn, call_id, query FROM cms.call_queue
	WHERE ` + claimable + `
	ORDER BY live_since IS NOT NULL, available_at
	LIMIT $1
	FOR UPDATE SKIP LOCKED
), claimed AS (
	UPDATE cms.call_queue q SET
		status       = CASE WHEN q.status = 'running' AND q.attempts >= $4 THEN 'failed' ELSE 'running' END,
		attempts     = CASE WHEN q.status = 'running' AND q.attempts >= $4 THEN q.attempts ELSE q.attempts + 1 END,
		locked_by    = CASE WHEN q.status = 'running' AND q.attempts >= $4 THEN NULL ELSE $2 END,
		locked_until = CASE WHEN q.status = 'running' AND q.attempts >= $4 THEN NULL ELSE now() + $3::float8 * interval '1 second' END,
		available_at = CASE WHEN q.status = 'running' AND q.attempts >= $4 THEN q.available_at ELSE now() + $3::float8 * interval '1 second' END,
		last_error   = CASE WHEN q.status = 'running' AND q.attempts >= $4
		                    THEN 'lease of ' || q.locked_by || ' expired on attempt ' || q.attempts ELSE q.last_error END,
		updated_at   = now()
	FROM picked
	WHERE q.cc_id = picked.cc_id AND q.vdn = picked.vdn AND q.call_id = picked.call_id AND q.query = picked.query
	RETURNING q.cc_id, q.vdn, q.call_id, q.attempts, q.status, q.is_call_in, q.live_since, q.last_answer, q.last_answer_at,
		q.enqueued_at, q.no_data_answers
)
SELECT cc_id, vdn, call_id, attempts, is_call_in, live_since, last_answer, last_answer_at, enqueued_at, no_data_answers,
	status = 'running'
FROM claimed`

// Claim leases up to n claimable rows of this worker's query, new calls
// before tracked ones' next polls, oldest due first. picked counts the rows
// it took, also those that turned failed (a lease that expired on the last
// allowed attempt) rather than leased: while it is above zero there may be
// more to claim, even when claimed is empty.
func (q *Queue) Claim(ctx context.Context, n int) (claimed []Claimed, picked int, err error) {
	if n <= 0 {
		return nil, 0, nil
	}
	rows, err := q.cfg.Pool.Query(ctx, claimSQL, n, q.cfg.Owner, q.cfg.Lease.Seconds(), q.cfg.MaxAttempts, q.cfg.Query)
	if err != nil {
		return nil, 0, fmt.Errorf("claim queue batch: %w", err)
	}
	out := make([]Claimed, 0, n)
	var (
		key                         extract.Key
		ccID, vdn, attempts, noData int32
		inbound                     *bool
		liveSince, lastAnswerAt     *time.Time
		lastAnswer                  []byte
		enqueuedAt                  time.Time
		leased                      bool
	)
	_, err = pgx.ForEachRow(rows, []any{&ccID, &vdn, &key.CallID, &attempts, &inbound, &liveSince, &lastAnswer, &lastAnswerAt,
		&enqueuedAt, &noData, &leased}, func() error {
		picked++
		if !leased {
			return nil
		}
		key.CCID, key.VDN = int(ccID), int(vdn)
		c := Claimed{Key: key, Inbound: inbound, Attempts: int(attempts), EnqueuedAt: enqueuedAt, NoDataAnswers: int(noData)}
		if liveSince != nil {
			c.LiveSince = *liveSince
		}
		if lastAnswerAt != nil {
			c.LastAnswerAt = *lastAnswerAt
		}
		if lastAnswer != nil {
			c.LastAnswer = bytes.Clone(lastAnswer)
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("claim queue batch: %w", err)
	}
	q.log.Debug().Int("asked", n).Int("picked", picked).Int("claimed", len(out)).Msg("claimed queue rows")
	return out, picked, nil
}

// Extend renews the lease of keys still leased to this worker (rows whose
// fetch is taking long). Keys leased to someone else are left alone, and so
// are rows another transaction holds locked (a settlement in progress, which
// ends the lease anyway): Extend never waits for a row lock, so it cannot
// take part in a deadlock.
func (q *Queue) Extend(ctx context.Context, keys []extract.Key) error {
	if len(keys) == 0 {
		return nil
	}
	ccIDs, vdns, callIDs := keyArrays(keys)
	_, err := q.cfg.Pool.Exec(ctx, `
		WITH locked AS (
			SELECT q.cc_id, q.vdn, q.call_id
			FROM cms.call_queue q
			JOIN unnest($1::integer[], $2::integer[], $3::text[]) AS k(cc_id, vdn, call_id)
			  ON q.cc_id = k.cc_id AND q.vdn = k.vdn AND q.call_id = k.call_id
			WHERE q.query = $6 AND q.status = 'running' AND q.locked_by = $5
			ORDER BY q.cc_id, q.vdn, q.call_id
			FOR UPDATE OF q SKIP LOCKED
		)
		UPDATE cms.call_queue q SET locked_until = now() + $4::float8 * interval '1 second',
			available_at = now() + $4::float8 * interval '1 second', updated_at = now()
		FROM locked
		WHERE q.cc_id = locked.cc_id AND q.vdn = locked.vdn AND q.call_id = locked.call_id AND q.query = $6`,
		ccIDs, vdns, callIDs, q.cfg.Lease.Seconds(), q.cfg.Owner, q.cfg.Query)
	if err != nil {
		return fmt.Errorf("extend %d queue leases: %w", len(keys), err)
	}
	return nil
}

// Outcome statuses for Settle.
const (
	StatusDone = "done" // loaded
	// StatusNoData: CC-CMS has no data for the call. A tracked call has
	// ended: done. A recent call (see Config.NoDataRetries) is asked again
	// after NoDataDelay; otherwise the row ends no_data.
	StatusNoData = "no_data"
	StatusFailed = "failed" // permanent failure: not retried
	StatusRetry  = "retry"  // transient failure: pending again after a backoff
	// StatusTrack: the call answered live and is tracked (Config.TrackEvery):
	// pending again TrackEvery after the answer, with the answer kept, until
	// TrackMax has passed since its first live answer (then done; see
	// TrackEnds). Both are measured on the answers' times (Outcome.AnswerAt),
	// not on when the settlement commits, so polls keep their pace.
	StatusTrack = "track"
	// StatusRelease hands a claimed row back untouched (the run stopped before
	// querying it): pending and due at once, and the claim is not counted.
	StatusRelease = "release"
)

// Outcome is the result of one claimed row.
type Outcome struct {
	Key        extract.Key
	Status     string // one of the Status constants
	Error      string // stored in last_error; "" clears it
	ResultCode string // stored in last_result_code; "" clears it
	// Answer and AnswerAt are a tracked call's live answer (StatusTrack).
	Answer   json.RawMessage
	AnswerAt time.Time
}

// Execer runs a statement: *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// settleSQL applies outcomes; see Settle. $1..$9 are the outcomes' arrays
// (key, status, error, result code, answer, answer time, the call's start
// by its callId); the rest are the worker and its Config.
const settleSQL = `
WITH o AS (
	SELECT DISTINCT ON (cc_id, vdn, call_id) *
	FROM unnest($1::integer[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::timestamptz[], $9::timestamptz[])
	     WITH ORDINALITY AS o(cc_id, vdn, call_id, status, error, result_code, answer, answer_at, started, ord)
	ORDER BY cc_id, vdn, call_id, ord DESC
), s AS (
	-- Each outcome's row, locked in key order (o's order), and what the
	-- outcome does to it. The lateral lookup filters on the primary key
	-- alone, so no other index can serve it: with the owner's index (whose
	-- statistics may say no row is running) the plan was a scan of every row
	-- of the owner per outcome, quadratic in the batch (3 s for 5,000 rows).
	-- Whether the row is still this worker's (owned) is checked on the
	-- locked row, by the UPDATE: a condition here would be pushed down.
	SELECT o.*, CASE
		WHEN o.status = 'release' THEN 'release'
		WHEN o.status = 'retry' AND q.attempts >= $12 THEN 'failed'
		WHEN o.status = 'track' AND q.live_since IS NOT NULL AND o.answer_at - q.live_since >= $16::float8 * interval '1 second' THEN 'done'
		WHEN o.status = 'no_data' AND q.live_since IS NOT NULL THEN 'done'
		WHEN o.status = 'no_data' AND q.no_data_answers < $17 AND o.started > now() - $18::float8 * interval '1 second' THEN 'no_data_retry'
		ELSE o.status END AS effect,
		q.status = 'running' AND q.locked_by = $10 AS owned
	FROM o CROSS JOIN LATERAL (
		SELECT q.attempts, q.live_since, q.no_data_answers, q.status, q.locked_by
		FROM cms.call_queue q
		WHERE q.cc_id = o.cc_id AND q.vdn = o.vdn AND q.call_id = o.call_id AND q.query = $11
		FOR UPDATE
	) q
)
UPDATE cms.call_queue q SET
	status = CASE WHEN s.effect IN ('release', 'retry', 'track', 'no_data_retry') THEN 'pending' ELSE s.effect END,
	available_at = CASE s.effect
		WHEN 'retry' THEN now() + random() * least($14::float8, $13::float8 * power(2, greatest(q.attempts - 1, 0))) * interval '1 second'
		WHEN 'release' THEN now()
		WHEN 'track' THEN coalesce(s.answer_at, now()) + $15::float8 * interval '1 second'
		WHEN 'no_data_retry' THEN now() + $19::float8 * interval '1 second'
		ELSE q.available_at END,
	-- A claim that got a live answer, or was handed back, spends nothing
	-- of the row's budget of failing claims.
	attempts = CASE WHEN s.effect = 'release' THEN greatest(q.attempts - 1, 0)
	                WHEN s.effect = 'track' THEN 0
	                ELSE q.attempts END,
	no_data_answers = CASE WHEN s.effect = 'no_data_retry' THEN q.no_data_answers + 1 ELSE q.no_data_answers END,
	live_since = CASE WHEN s.effect = 'track' THEN coalesce(q.live_since, s.answer_at) ELSE q.live_since END,
	last_answer = CASE WHEN s.effect = 'track' THEN s.answer ELSE q.last_answer END,
	last_answer_at = CASE WHEN s.effect = 'track' THEN s.answer_at ELSE q.last_answer_at END,
	last_error = CASE WHEN s.effect = 'release' THEN q.last_error ELSE nullif(s.error, '') END,
	last_result_code = CASE WHEN s.effect = 'release' THEN q.last_result_code ELSE nullif(s.result_code, '') END,
	locked_by = NULL,
	locked_until = NULL,
	updated_at = now()
FROM s
WHERE q.cc_id = s.cc_id AND q.vdn = s.vdn AND q.call_id = s.call_id AND q.query = $11 AND s.owned`

// Settle records outcomes in one statement through db: the pool, or the
// sink's transaction so the rows change exactly when the loaded data commits.
// Only rows still running and leased to this worker change; the count of
// rows changed is returned. A retry becomes pending again, due after a
// full-jitter backoff, unless the row has had MaxAttempts claims: then it
// becomes failed. See the Status constants for the others. Every outcome
// releases the lease.
func (q *Queue) Settle(ctx context.Context, db Execer, outcomes []Outcome) (int64, error) {
	if len(outcomes) == 0 {
		return 0, nil
	}
	n := len(outcomes)
	ccIDs, vdns, callIDs := make([]int32, n), make([]int32, n), make([]string, n)
	statuses, errs, codes := make([]string, n), make([]string, n), make([]string, n)
	answers, answerAt, started := make([]json.RawMessage, n), make([]*time.Time, n), make([]*time.Time, n)
	for i, o := range outcomes {
		switch o.Status {
		case StatusDone, StatusNoData, StatusFailed, StatusRetry, StatusRelease:
		case StatusTrack:
			if q.cfg.TrackEvery <= 0 {
				// Due again at once, forever: a caller's mistake.
				return 0, fmt.Errorf("settle queue rows: key %v: %s needs Config.TrackEvery", o.Key, o.Status)
			}
		default:
			return 0, fmt.Errorf("settle queue rows: key %v: unknown status %q", o.Key, o.Status)
		}
		ccIDs[i], vdns[i], callIDs[i] = int32(o.Key.CCID), int32(o.Key.VDN), o.Key.CallID
		statuses[i], errs[i], codes[i] = o.Status, o.Error, o.ResultCode
		if o.Status == StatusTrack {
			answers[i] = o.Answer
			at := o.AnswerAt
			answerAt[i] = &at
		}
		if t, ok := extract.CallStartedAt(o.Key.CallID); ok {
			started[i] = &t
		}
	}
	// A key listed twice would make the UPDATE's effect depend on join
	// order; the last outcome for a key wins, as it would in sequence. The
	// rows are locked in key order first (see the package comment).
	tag, err := db.Exec(ctx, settleSQL,
		ccIDs, vdns, callIDs, statuses, errs, codes, answers, answerAt, started,
		q.cfg.Owner, q.cfg.Query, q.cfg.MaxAttempts, q.cfg.BackoffBase.Seconds(), q.cfg.BackoffCap.Seconds(),
		q.cfg.TrackEvery.Seconds(), q.cfg.TrackMax.Seconds(), max(q.cfg.NoDataRetries, 0), q.cfg.NoDataWindow.Seconds(), q.cfg.NoDataDelay.Seconds())
	if err != nil {
		return 0, fmt.Errorf("settle %d queue rows: %w", n, err)
	}
	if settled := tag.RowsAffected(); settled < int64(n) {
		// Expected after a lease expired and another worker took the row.
		q.log.Debug().Int("outcomes", n).Int64("settled", settled).Msg("some queue rows were no longer leased to this worker")
	}
	return tag.RowsAffected(), nil
}

// ReleaseOwned hands back every row still running under this worker's
// Owner: pending and due at once, the claim not counted (see
// StatusRelease). It is the last word of a worker that stops: whatever it
// claimed and did not settle, including rows of a claim whose answer never
// reached it (a statement cut off by a cancelled context), goes back. The
// rows are locked in key order, like every multi-row update of the queue.
func (q *Queue) ReleaseOwned(ctx context.Context) (int64, error) {
	tag, err := q.cfg.Pool.Exec(ctx, `
		WITH locked AS (
			SELECT cc_id, vdn, call_id FROM cms.call_queue
			WHERE query = $2 AND status = 'running' AND locked_by = $1
			ORDER BY cc_id, vdn, call_id
			FOR UPDATE
		)
		UPDATE cms.call_queue q SET status = 'pending', available_at = now(),
			attempts = greatest(q.attempts - 1, 0), locked_by = NULL, locked_until = NULL, updated_at = now()
		FROM locked
		WHERE q.cc_id = locked.cc_id AND q.vdn = locked.vdn AND q.call_id = locked.call_id AND q.query = $2`, q.cfg.Owner, q.cfg.Query)
	if err != nil {
		return 0, fmt.Errorf("hand back the rows of %s: %w", q.cfg.Owner, err)
	}
	return tag.RowsAffected(), nil
}

// RequeueFilter selects the rows Requeue puts back.
type RequeueFilter struct {
	// Statuses are StatusFailed and/or StatusNoData (at least one).
	Statuses []string
	// ResultCode keeps only rows whose last result code is this; "" keeps all.
	ResultCode string
	// Query keeps only rows of this query (QueryBasic, QueryCDR); "" keeps
	// rows of every query.
	Query string
}

// Requeue makes the rows f selects pending again, with a fresh budget of
// attempts and no-data answers. It returns the number of rows requeued.
func (q *Queue) Requeue(ctx context.Context, f RequeueFilter) (int64, error) {
	for _, st := range f.Statuses {
		if st != StatusFailed && st != StatusNoData {
			return 0, fmt.Errorf("requeue: status %q is not %s or %s", st, StatusFailed, StatusNoData)
		}
	}
	if len(f.Statuses) == 0 {
		return 0, errors.New("requeue: no status selected")
	}
	if f.Query != "" {
		if err := CheckQuery(f.Query); err != nil {
			return 0, fmt.Errorf("requeue: %w", err)
		}
	}
	tag, err := q.cfg.Pool.Exec(ctx, `
		WITH locked AS (
			SELECT cc_id, vdn, call_id, query FROM cms.call_queue
			WHERE status = ANY($2::text[]) AND ($1 = '' OR last_result_code = $1) AND ($3 = '' OR query = $3)
			ORDER BY cc_id, vdn, call_id, query
			FOR UPDATE
		)
		UPDATE cms.call_queue q SET status = 'pending', attempts = 0, no_data_answers = 0, available_at = now(),
			locked_by = NULL, locked_until = NULL, updated_at = now()
		FROM locked
		WHERE q.cc_id = locked.cc_id AND q.vdn = locked.vdn AND q.call_id = locked.call_id AND q.query = locked.query`,
		f.ResultCode, f.Statuses, f.Query)
	if err != nil {
		return 0, fmt.Errorf("requeue rows: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Tracking reports whether a live answer arrived at answerAt keeps its call
// tracked (settle it StatusTrack): tracking is on and TrackMax has not
// passed since the call's first live answer (liveSince, Claimed.LiveSince;
// zero for the first). When it returns false the answer is the call's last:
// settle it done. Settle applies the same rule, so a caller writing the
// final row when this says so agrees with the queue.
func (q *Queue) Tracking(liveSince, answerAt time.Time) bool {
	if q.cfg.TrackEvery <= 0 {
		return false
	}
	return liveSince.IsZero() || answerAt.Sub(liveSince) < q.cfg.TrackMax
}

// Depth is what a follower's gauges show of its query's queue.
type Depth struct {
	Due     int64 // claimable now
	Tracked int64 // calls being tracked (answered live, asked again until they end)
}

// Depth counts the rows claimable now and the calls being tracked.
func (q *Queue) Depth(ctx context.Context) (Depth, error) {
	var d Depth
	err := q.cfg.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE `+strings.ReplaceAll(claimable, "$5", "$1")+`),
		count(*) FILTER (WHERE live_since IS NOT NULL)
		FROM cms.call_queue WHERE query = $1 AND status IN ('pending', 'running')`, q.cfg.Query).Scan(&d.Due, &d.Tracked)
	if err != nil {
		return Depth{}, fmt.Errorf("count queue rows: %w", err)
	}
	return d, nil
}

// nextDue is how long until the earliest row of this query that is not
// claimable now becomes claimable (a retry, a tracked call's next poll, a
// lease running out), by the database's clock; ok is false when no row is
// waiting.
func (q *Queue) nextDue(ctx context.Context) (d time.Duration, ok bool, err error) {
	var secs *float64
	// One minimum per part of the claim index (new calls, tracked calls):
	// each an index lookup.
	err = q.cfg.Pool.QueryRow(ctx, `SELECT extract(epoch FROM least(
		(SELECT min(available_at) FROM cms.call_queue
		 WHERE query = $1 AND NOT (live_since IS NOT NULL) AND status IN ('pending', 'running')),
		(SELECT min(available_at) FROM cms.call_queue
		 WHERE query = $1 AND (live_since IS NOT NULL) AND status IN ('pending', 'running'))) - now())::float8`, q.cfg.Query).Scan(&secs)
	if err != nil {
		return 0, false, fmt.Errorf("look up the next due queue row: %w", err)
	}
	if secs == nil {
		return 0, false, nil
	}
	return time.Duration(*secs * float64(time.Second)), true, nil
}

// Pending counts the rows claimable now, for progress reporting.
func (q *Queue) Pending(ctx context.Context) (int64, error) {
	var n int64
	if err := q.cfg.Pool.QueryRow(ctx, `SELECT count(*) FROM cms.call_queue WHERE `+
		strings.ReplaceAll(claimable, "$5", "$1"), q.cfg.Query).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending queue rows: %w", err)
	}
	return n, nil
}

func keyArrays(keys []extract.Key) (ccIDs, vdns []int32, callIDs []string) {
	ccIDs, vdns, callIDs = make([]int32, len(keys)), make([]int32, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ccIDs[i], vdns[i], callIDs[i] = int32(k.CCID), int32(k.VDN), k.CallID
	}
	return ccIDs, vdns, callIDs
}
