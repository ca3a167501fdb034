package queue_test

import (
	"errors"
	"fmt"
	"iter"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/pgtest"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(workerEnv); url != "" {
		// A worker process of BenchmarkClaimComplete2Processes.
		if err := runBenchWorker(url, os.Getenv("QUEUE_BENCH_WORKER_NAME")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	pgtest.Main(m)
}

// setup returns a pool on a fresh, migrated database.
func setup(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, _ := pgtest.Migrated(t)
	return pool
}

func newQueue(t testing.TB, pool *pgxpool.Pool, owner string, edit func(*queue.Config)) *queue.Queue {
	t.Helper()
	cfg := queue.Config{Pool: pool, Owner: owner}
	if edit != nil {
		edit(&cfg)
	}
	q, err := queue.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func keys(from, n int) []extract.Key {
	out := make([]extract.Key, n)
	for i := range out {
		out[i] = extract.Key{CCID: 1 + (from+i)%3, VDN: 7, CallID: fmt.Sprintf("1659513159000-%d", from+i)}
	}
	return out
}

func source(ks []extract.Key) iter.Seq2[queue.Entry, error] {
	return func(yield func(queue.Entry, error) bool) {
		for _, k := range ks {
			if !yield(queue.Entry{Key: k}, nil) {
				return
			}
		}
	}
}

func enqueue(t testing.TB, pool *pgxpool.Pool, ks []extract.Key) {
	t.Helper()
	if _, err := queue.Enqueue(t.Context(), pool, queue.QueryBasic, source(ks)); err != nil {
		t.Fatal(err)
	}
}

// rowState is a queue row as stored.
type rowState struct {
	Status         string
	Attempts       int
	LockedBy       *string
	LockedUntil    *time.Time
	AvailableAt    time.Time
	LastError      *string
	LastResultCode *string
}

func state(t *testing.T, pool *pgxpool.Pool, k extract.Key) rowState {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT status, attempts, locked_by, locked_until, available_at, last_error, last_result_code
		FROM cms.call_queue WHERE (cc_id, vdn, call_id) = ($1, $2, $3)`, k.CCID, k.VDN, k.CallID)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[rowState])
	if err != nil {
		t.Fatalf("row %v: %v", k, err)
	}
	return s
}

func dbNow(t *testing.T, pool *pgxpool.Pool) time.Time {
	t.Helper()
	var now time.Time
	if err := pool.QueryRow(t.Context(), "SELECT clock_timestamp()").Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

func claimedKeys(cs []queue.Claimed) []extract.Key {
	out := make([]extract.Key, len(cs))
	for i, c := range cs {
		out[i] = c.Key
	}
	return out
}

func outcomes(ks []extract.Key, status string) []queue.Outcome {
	out := make([]queue.Outcome, len(ks))
	for i, k := range ks {
		out[i] = queue.Outcome{Key: k, Status: status}
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	// pgxpool connects lazily: a pool is enough to validate.
	pool, err := pgxpool.New(t.Context(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	tests := []struct {
		cfg   queue.Config
		field string // "" = valid
	}{
		{queue.Config{Pool: pool, Owner: "h:1:r"}, ""},
		{queue.Config{Owner: "h:1:r"}, "Pool"},
		{queue.Config{Pool: pool}, "Owner"},
		{queue.Config{Pool: pool, Owner: "o", Lease: -time.Second}, "Lease"},
		{queue.Config{Pool: pool, Owner: "o", MaxAttempts: -1}, "MaxAttempts"},
		{queue.Config{Pool: pool, Owner: "o", BackoffBase: -1}, "BackoffBase"},
		{queue.Config{Pool: pool, Owner: "o", BackoffCap: -1}, "BackoffCap"},
		{queue.Config{Pool: pool, Owner: "o", BackoffCap: time.Second}, "BackoffCap"}, // below the 30s default base
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%+v: %v", tt.cfg, err)
		case tt.field != "" && (err == nil || !strings.Contains(err.Error(), tt.field)):
			t.Errorf("%+v: error %v, want one naming %s", tt.cfg, err, tt.field)
		}
	}
}

func TestEnqueueCountsDuplicates(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	a, b, c, d := keys(0, 4)[0], keys(0, 4)[1], keys(0, 4)[2], keys(0, 4)[3]

	rep, err := queue.Enqueue(t.Context(), pool, queue.QueryBasic, source([]extract.Key{a, b, a, c}))
	if want := (queue.EnqueueReport{Read: 4, Inserted: 3, Duplicates: 1}); err != nil || rep != want {
		t.Fatalf("first Enqueue = %+v, %v; want %+v", rep, err, want)
	}
	rep, err = queue.Enqueue(t.Context(), pool, queue.QueryBasic, source([]extract.Key{a, d}))
	if want := (queue.EnqueueReport{Read: 2, Inserted: 1, Duplicates: 1}); err != nil || rep != want {
		t.Fatalf("second Enqueue = %+v, %v; want %+v", rep, err, want)
	}

	// More than one batch, with repeats across the batch boundary.
	many := keys(10, 60_000)
	many = append(many, many[:30_000]...)
	rep, err = queue.Enqueue(t.Context(), pool, queue.QueryBasic, source(many))
	if want := (queue.EnqueueReport{Read: 90_000, Inserted: 60_000, Duplicates: 30_000}); err != nil || rep != want {
		t.Fatalf("large Enqueue = %+v, %v; want %+v", rep, err, want)
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM cms.call_queue WHERE status = 'pending'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 60_004 {
		t.Fatalf("%d pending rows, want 60004", n)
	}
}

func TestEnqueueStops(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	bad := extract.Key{CCID: 70000, VDN: 1, CallID: "1-1"}
	rep, err := queue.Enqueue(t.Context(), pool, queue.QueryBasic, source(append(keys(0, 2), bad)))
	var fe *extract.FieldError
	if !errors.As(err, &fe) || fe.Field != "ccId" {
		t.Fatalf("Enqueue with an invalid key: %+v, %v; want a ccId FieldError", rep, err)
	}

	errSource := errors.New("csv: bad quote")
	failing := func(yield func(queue.Entry, error) bool) {
		if yield(queue.Entry{Key: keys(5, 1)[0]}, nil) {
			yield(queue.Entry{}, errSource)
		}
	}
	if _, err := queue.Enqueue(t.Context(), pool, queue.QueryBasic, failing); !errors.Is(err, errSource) {
		t.Fatalf("Enqueue with a failing source: %v, want the source's error", err)
	}
}

// TestClaimConcurrent: two workers claiming in small batches share the rows
// without overlap, and no claim returns more than asked.
func TestClaimConcurrent(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	all := keys(0, 300)
	enqueue(t, pool, all)

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[extract.Key]string{}
	)
	for w := range 2 {
		owner := fmt.Sprintf("host:%d:run", w)
		q := newQueue(t, pool, owner, nil)
		wg.Go(func() {
			for range 50 {
				got, _, err := q.Claim(t.Context(), 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) > 7 {
					t.Errorf("claim of 7 returned %d rows", len(got))
				}
				mu.Lock()
				for _, c := range got {
					if prev, dup := seen[c.Key]; dup {
						t.Errorf("%v claimed by %s and %s", c.Key, prev, owner)
					}
					seen[c.Key] = owner
					if c.Attempts != 1 {
						t.Errorf("%v: attempts %d on first claim", c.Key, c.Attempts)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != len(all) {
		t.Fatalf("claimed %d distinct rows, want all %d", len(seen), len(all))
	}
	// Leased rows are not claimable again before their lease ends.
	if got, _, err := newQueue(t, pool, "third", nil).Claim(t.Context(), 10); err != nil || len(got) != 0 {
		t.Fatalf("a third worker claimed %d leased rows (%v)", len(got), err)
	}
	for _, k := range all {
		if s := state(t, pool, k); s.Status != "running" || s.LockedBy == nil || *s.LockedBy != seen[k] {
			t.Fatalf("%v: %+v, want running and locked by %s", k, s, seen[k])
		}
	}
}

// TestLeaseExpiry: a row whose lease ran out goes to another worker, and
// the first worker can then neither settle nor extend it.
func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ks := keys(0, 3)
	enqueue(t, pool, ks)
	slow := newQueue(t, pool, "slow", func(c *queue.Config) { c.Lease = time.Millisecond })
	fast := newQueue(t, pool, "fast", nil)

	if got, _, err := slow.Claim(t.Context(), 10); err != nil || len(got) != 3 {
		t.Fatalf("slow claim: %v, %v", got, err)
	}
	time.Sleep(20 * time.Millisecond)
	got, _, err := fast.Claim(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Attempts != 2 {
		t.Fatalf("after the lease expired fast claimed %+v, want the 3 rows at attempt 2", got)
	}
	before := state(t, pool, ks[0])

	if err := slow.Extend(t.Context(), ks); err != nil {
		t.Fatal(err)
	}
	if n, err := slow.Settle(t.Context(), pool, outcomes(ks, queue.StatusDone)); err != nil || n != 0 {
		t.Fatalf("settle by the former owner changed %d rows (%v), want 0", n, err)
	}
	if after := state(t, pool, ks[0]); after.Status != "running" || *after.LockedBy != "fast" || !after.LockedUntil.Equal(*before.LockedUntil) {
		t.Fatalf("row after the former owner's Extend and Settle: %+v (was %+v)", after, before)
	}

	// The owner's Extend pushes its lease.
	if err := fast.Extend(t.Context(), ks[:1]); err != nil {
		t.Fatal(err)
	}
	if after := state(t, pool, ks[0]); !after.LockedUntil.After(*before.LockedUntil) {
		t.Fatalf("owner's Extend left locked_until at %v (was %v)", after.LockedUntil, before.LockedUntil)
	}
	if n, err := fast.Settle(t.Context(), pool, outcomes(ks, queue.StatusDone)); err != nil || n != 3 {
		t.Fatalf("settle by the owner: %d, %v; want 3", n, err)
	}
}

// TestExpiredLeaseOnLastAttemptFails: a row whose worker keeps dying on it
// fails after MaxAttempts claims instead of looping.
func TestExpiredLeaseOnLastAttemptFails(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	k := keys(0, 1)[0]
	enqueue(t, pool, []extract.Key{k})
	q := newQueue(t, pool, "dies", func(c *queue.Config) { c.Lease, c.MaxAttempts = time.Millisecond, 2 })
	for attempt := 1; attempt <= 2; attempt++ {
		got, _, err := q.Claim(t.Context(), 1)
		if err != nil || len(got) != 1 || got[0].Attempts != attempt {
			t.Fatalf("claim %d: %+v, %v", attempt, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, _, err := q.Claim(t.Context(), 1); err != nil || len(got) != 0 {
		t.Fatalf("claim after the last attempt: %+v, %v; want nothing", got, err)
	}
	s := state(t, pool, k)
	if s.Status != "failed" || s.LockedBy != nil || s.LastError == nil || !strings.Contains(*s.LastError, "lease of dies expired on attempt 2") {
		t.Fatalf("row: %+v (last_error %v)", s, show(s.LastError))
	}
}

func show(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

func TestSettleOutcomes(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ks := keys(0, 5)
	enqueue(t, pool, ks)
	q := newQueue(t, pool, "w", func(c *queue.Config) { c.BackoffBase, c.BackoffCap = time.Minute, time.Hour })
	if _, _, err := q.Claim(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Settle(t.Context(), pool, []queue.Outcome{{Key: ks[0], Status: "finished"}}); err == nil {
		t.Fatal("unknown status accepted")
	}

	start := dbNow(t, pool)
	n, err := q.Settle(t.Context(), pool, []queue.Outcome{
		{Key: ks[0], Status: queue.StatusDone},
		{Key: ks[1], Status: queue.StatusNoData, ResultCode: "0100000"},
		{Key: ks[2], Status: queue.StatusFailed, Error: "invalid parameter", ResultCode: "0100002"},
		{Key: ks[3], Status: queue.StatusRetry, Error: "HTTP 503", ResultCode: "503"},
		// A key listed twice: the last outcome counts.
		{Key: ks[4], Status: queue.StatusFailed, Error: "first"},
		{Key: ks[4], Status: queue.StatusDone},
	})
	end := dbNow(t, pool)
	if err != nil || n != 5 {
		t.Fatalf("Settle = %d, %v; want 5 rows", n, err)
	}
	tests := []struct {
		key       extract.Key
		status    string
		lastError string
		lastCode  string
		maxDelay  time.Duration // for the retried row
	}{
		{ks[0], "done", "NULL", "NULL", 0},
		{ks[1], "no_data", "NULL", "0100000", 0},
		{ks[2], "failed", "invalid parameter", "0100002", 0},
		{ks[3], "pending", "HTTP 503", "503", time.Minute}, // first attempt: at most BackoffBase
		{ks[4], "done", "NULL", "NULL", 0},
	}
	for _, tt := range tests {
		s := state(t, pool, tt.key)
		if s.Status != tt.status || s.LockedBy != nil || s.LockedUntil != nil || show(s.LastError) != tt.lastError || show(s.LastResultCode) != tt.lastCode {
			t.Errorf("%v: status=%s locked_by=%v locked_until=%v last_error=%s last_result_code=%s; want %s, no lock, %s, %s",
				tt.key, s.Status, s.LockedBy, s.LockedUntil, show(s.LastError), show(s.LastResultCode), tt.status, tt.lastError, tt.lastCode)
		}
		if tt.maxDelay > 0 && (s.AvailableAt.Before(start) || s.AvailableAt.After(end.Add(tt.maxDelay))) {
			t.Errorf("%v: available_at %v outside [%v, %v]", tt.key, s.AvailableAt, start, end.Add(tt.maxDelay))
		}
	}
}

// TestRetryBackoffAndLimit: retries are spread with jitter within the
// exponential bound and the cap, and the last allowed attempt fails the row.
func TestRetryBackoffAndLimit(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ks := keys(0, 50)
	enqueue(t, pool, ks)
	q := newQueue(t, pool, "w", func(c *queue.Config) {
		c.MaxAttempts, c.BackoffBase, c.BackoffCap = 3, 10*time.Minute, 30*time.Minute
	})
	makeDue := func() {
		if _, err := pool.Exec(t.Context(), "UPDATE cms.call_queue SET available_at = now() WHERE status = 'pending'"); err != nil {
			t.Fatal(err)
		}
	}

	// Attempt 1: delay in [0, 10m]; attempt 2: [0, 20m]; attempt 3: failed.
	for attempt, bound := range []time.Duration{10 * time.Minute, 20 * time.Minute} {
		got, _, err := q.Claim(t.Context(), 100)
		if err != nil || len(got) != len(ks) || got[0].Attempts != attempt+1 {
			t.Fatalf("claim %d: %d rows, %v", attempt+1, len(got), err)
		}
		start := dbNow(t, pool)
		if n, err := q.Settle(t.Context(), pool, outcomes(ks, queue.StatusRetry)); err != nil || n != int64(len(ks)) {
			t.Fatalf("settle retry: %d, %v", n, err)
		}
		end := dbNow(t, pool)
		if n, err := q.Pending(t.Context()); err != nil || n > 1 {
			// Full jitter may draw a delay near zero for one row, hardly for two.
			t.Errorf("%d rows due right after a retry, want them backed off (err %v)", n, err)
		}
		var lo, hi time.Time
		for i, k := range ks {
			s := state(t, pool, k)
			if s.Status != "pending" || s.AvailableAt.Before(start) || s.AvailableAt.After(end.Add(bound)) {
				t.Fatalf("attempt %d, %v: %s due %v, want pending due within [%v, %v]", attempt+1, k, s.Status, s.AvailableAt, start, end.Add(bound))
			}
			if i == 0 || s.AvailableAt.Before(lo) {
				lo = s.AvailableAt
			}
			if i == 0 || s.AvailableAt.After(hi) {
				hi = s.AvailableAt
			}
		}
		// 50 uniform draws over 10+ minutes all inside one minute: probability ~1e-50.
		if hi.Sub(lo) < time.Minute {
			t.Errorf("attempt %d: retry times spread over only %v: no jitter?", attempt+1, hi.Sub(lo))
		}
		makeDue()
	}
	if got, _, err := q.Claim(t.Context(), 100); err != nil || len(got) != len(ks) || got[0].Attempts != 3 {
		t.Fatalf("claim 3: %d rows, %v", len(got), err)
	}
	if _, err := q.Settle(t.Context(), pool, outcomes(ks, queue.StatusRetry)); err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		if s := state(t, pool, k); s.Status != "failed" || s.LockedBy != nil {
			t.Fatalf("%v after a retry on the last attempt: %+v, want failed", k, s)
		}
	}
}

// TestBackoffCap: the exponential delay stops growing at BackoffCap.
func TestBackoffCap(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ks := keys(0, 20)
	enqueue(t, pool, ks)
	q := newQueue(t, pool, "w", func(c *queue.Config) {
		c.MaxAttempts, c.BackoffBase, c.BackoffCap = 100, time.Minute, 2*time.Minute
	})
	if _, _, err := q.Claim(t.Context(), 100); err != nil {
		t.Fatal(err)
	}
	// Uncapped, attempt 10 would wait up to 512 minutes.
	if _, err := pool.Exec(t.Context(), "UPDATE cms.call_queue SET attempts = 10"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Settle(t.Context(), pool, outcomes(ks, queue.StatusRetry)); err != nil {
		t.Fatal(err)
	}
	end := dbNow(t, pool)
	for _, k := range ks {
		if s := state(t, pool, k); s.Status != "pending" || s.AvailableAt.After(end.Add(2*time.Minute)) {
			t.Fatalf("%v: %s due %v, want pending within 2m of %v", k, s.Status, s.AvailableAt, end)
		}
	}
}

func TestRequeue(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ks := keys(0, 4)
	enqueue(t, pool, ks)
	q := newQueue(t, pool, "w", nil)
	if _, _, err := q.Claim(t.Context(), 4); err != nil {
		t.Fatal(err)
	}
	_, err := q.Settle(t.Context(), pool, []queue.Outcome{
		{Key: ks[0], Status: queue.StatusFailed, ResultCode: "0100001"},
		{Key: ks[1], Status: queue.StatusFailed, ResultCode: "0100002"},
		{Key: ks[2], Status: queue.StatusFailed},
		{Key: ks[3], Status: queue.StatusDone},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := q.Pending(t.Context()); err != nil || n != 0 {
		t.Fatalf("Pending = %d, %v; want 0", n, err)
	}
	if n, err := q.Requeue(t.Context(), queue.RequeueFilter{Statuses: []string{queue.StatusFailed}, ResultCode: "0100001"}); err != nil || n != 1 {
		t.Fatalf("Requeue(0100001) = %d, %v; want 1", n, err)
	}
	if s := state(t, pool, ks[0]); s.Status != "pending" || s.Attempts != 0 {
		t.Fatalf("requeued row: %+v", s)
	}
	if s := state(t, pool, ks[1]); s.Status != "failed" {
		t.Fatalf("row with another code: %+v", s)
	}
	if n, err := q.Requeue(t.Context(), queue.RequeueFilter{Statuses: []string{queue.StatusFailed}}); err != nil || n != 2 {
		t.Fatalf("Requeue(all) = %d, %v; want the 2 still failed", n, err)
	}
	if n, err := q.Pending(t.Context()); err != nil || n != 3 {
		t.Fatalf("Pending = %d, %v; want 3", n, err)
	}
	if s := state(t, pool, ks[3]); s.Status != "done" {
		t.Fatalf("done row touched by Requeue: %+v", s)
	}
}

// TestSettleInRolledBackTx: settling inside the sink's transaction is undone
// with it, leaving the rows leased for a retry or a re-claim.
func TestSettleInRolledBackTx(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ks := keys(0, 3)
	enqueue(t, pool, ks)
	q := newQueue(t, pool, "w", nil)
	if _, _, err := q.Claim(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := q.Settle(t.Context(), tx, outcomes(ks, queue.StatusDone)); err != nil || n != 3 {
		t.Fatalf("Settle in tx = %d, %v", n, err)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		if s := state(t, pool, k); s.Status != "running" || show(s.LockedBy) != "w" {
			t.Fatalf("%v after rollback: %+v, want running, locked by w", k, s)
		}
	}
}

func TestPendingCountsDueRows(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ks := keys(0, 6)
	enqueue(t, pool, ks)
	q := newQueue(t, pool, "w", nil)
	if _, err := pool.Exec(t.Context(), "UPDATE cms.call_queue SET available_at = now() + interval '1 hour' WHERE call_id = $1", ks[5].CallID); err != nil {
		t.Fatal(err)
	}
	if got, _, err := q.Claim(t.Context(), 2); err != nil || len(got) != 2 {
		t.Fatalf("claim: %+v, %v", got, err)
	}
	// 6 rows: 2 leased, 1 not yet due, 3 claimable.
	got, err := q.Pending(t.Context())
	if err != nil || got != 3 {
		t.Fatalf("Pending = %d, %v; want 3", got, err)
	}
}

// TestReleaseHandsRowsBackAtOnce: rows a stopping run never queried are
// pending and due again, and the claim does not count against their budget.
func TestReleaseHandsRowsBackAtOnce(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	ks := keys(0, 3)
	enqueue(t, pool, ks)
	q := newQueue(t, pool, "stopping", nil)
	if _, _, err := q.Claim(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Settle(t.Context(), pool, outcomes(ks[:2], queue.StatusRelease)); err != nil {
		t.Fatal(err)
	}
	for _, k := range ks[:2] {
		s := state(t, pool, k)
		if s.Status != "pending" || s.Attempts != 0 || s.LockedBy != nil || s.AvailableAt.After(dbNow(t, pool)) {
			t.Errorf("%v after release: %+v; want pending, 0 attempts, unlocked, due now", k, s)
		}
	}
	other := newQueue(t, pool, "next", nil)
	got, _, err := other.Claim(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("another worker claimed %d rows, want the 2 released ones", len(got))
	}
}
