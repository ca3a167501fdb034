package queue_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/queue"
)

func newConsumer(t *testing.T, pool *pgxpool.Pool, owner string, edit func(*queue.Config)) *queue.Consumer {
	t.Helper()
	cfg := queue.Config{Pool: pool, Owner: owner}
	if edit != nil {
		edit(&cfg)
	}
	c, err := queue.NewConsumer(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.WithoutCancel(t.Context())) })
	return c
}

// next takes n rows from c.
func next(t *testing.T, c *queue.Consumer, n int) []extract.Key {
	t.Helper()
	out := make([]extract.Key, 0, n)
	for range n {
		r, err := c.Next(t.Context())
		if err != nil {
			t.Fatalf("Next after %d rows: %v", len(out), err)
		}
		out = append(out, r.Key)
	}
	return out
}

func TestConsumerBounds(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	enqueue(t, pool, keys(0, 30))

	c := newConsumer(t, pool, "bounded", func(c *queue.Config) { c.ClaimBatch, c.MaxItems = 4, 10 })
	got := next(t, c, 10)
	if _, err := c.Next(t.Context()); err != io.EOF {
		t.Fatalf("Next after MaxItems = %v, want io.EOF", err)
	}
	if n := count(t, pool, "SELECT count(*) FROM cms.call_queue WHERE status = 'running'"); n != 10 || len(got) != 10 {
		t.Fatalf("%d rows running after handing out %d, want exactly MaxItems (10)", n, len(got))
	}

	drains := newConsumer(t, pool, "drains", func(c *queue.Config) { c.ClaimBatch = 7 })
	if got := next(t, drains, 20); len(got) != 20 {
		t.Fatal(got)
	}
	if _, err := drains.Next(t.Context()); err != io.EOF {
		t.Fatalf("Next on a drained queue = %v, want io.EOF", err)
	}

	late := newConsumer(t, pool, "late", func(c *queue.Config) { c.MaxDuration = time.Nanosecond })
	time.Sleep(time.Millisecond)
	if _, err := late.Next(t.Context()); err != io.EOF {
		t.Fatalf("Next after MaxDuration = %v, want io.EOF", err)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Issue 9, defect 1: an aborted run left its claimed rows running, attempt
// counted, until their lease expired; after a few aborts rows CC-CMS had
// answered ended failed. Close hands back every row whose settlement did not
// commit, without counting the claim.
func TestConsumerCloseHandsBackWhatDidNotCommit(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	enqueue(t, pool, keys(0, 12))
	c := newConsumer(t, pool, "aborts", func(c *queue.Config) { c.ClaimBatch = 4 })
	got := next(t, c, 10) // claims 12: 2 stay buffered
	if c.Held() != 12 {
		t.Fatalf("Held = %d, want the 12 claimed", c.Held())
	}

	committed, rolledBack, ambiguous := got[:3], got[3:5], got[5:7] // got[7:10] never settled
	if _, err := c.Settle(t.Context(), nil, outcomes(committed, queue.StatusDone)); err != nil {
		t.Fatal(err)
	}
	c.Settled(committed, true)

	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Settle(t.Context(), tx, outcomes(rolledBack, queue.StatusDone)); err != nil {
		t.Fatal(err)
	}
	tx.Rollback(t.Context())
	c.Settled(rolledBack, false)

	// A commit whose outcome the caller could not tell: reported as not
	// committed although it was. Close must leave those rows done.
	tx, err = pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Settle(t.Context(), tx, outcomes(ambiguous, queue.StatusNoData)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.Settled(ambiguous, false)

	n, err := c.Close(t.Context())
	if err != nil || n != 7 {
		t.Fatalf("Close = %d, %v; want 7 rows handed back (2 rolled back, 3 never settled, 2 never handed out)", n, err)
	}
	for _, k := range committed {
		if s := state(t, pool, k); s.Status != "done" {
			t.Errorf("%v: %+v, want done", k, s)
		}
	}
	for _, k := range ambiguous {
		if s := state(t, pool, k); s.Status != "no_data" {
			t.Errorf("%v: %+v, want no_data", k, s)
		}
	}
	if n := count(t, pool, "SELECT count(*) FROM cms.call_queue WHERE status = 'pending' AND attempts = 0 AND locked_by IS NULL AND available_at <= now()"); n != 7 {
		t.Errorf("%d rows pending, due and not counted as an attempt, want 7", n)
	}
	if n, err := c.Close(t.Context()); n != 0 || err != nil {
		t.Errorf("second Close = %d, %v", n, err)
	}
}

// A claim whose answer never reached the consumer (the statement was cut off
// by a cancelled context after the server ran it) leaves rows running under
// the consumer's owner that it does not know of: Close hands them back too,
// and leaves another worker's rows alone.
func TestConsumerCloseHandsBackAClaimItNeverSaw(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	enqueue(t, pool, keys(0, 10))
	c := newConsumer(t, pool, "lost-claim", nil)
	lost, err := queue.New(queue.Config{Pool: pool, Owner: "lost-claim"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := lost.Claim(t.Context(), 6); err != nil || len(got) != 6 {
		t.Fatalf("claim = %d rows, %v", len(got), err)
	}
	other, err := queue.New(queue.Config{Pool: pool, Owner: "someone-else"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := other.Claim(t.Context(), 4); err != nil || len(got) != 4 {
		t.Fatalf("other claim = %d rows, %v", len(got), err)
	}
	if n, err := c.Close(t.Context()); err != nil || n != 6 {
		t.Fatalf("Close = %d, %v; want the 6 rows claimed under its owner", n, err)
	}
	if n := count(t, pool, "SELECT count(*) FROM cms.call_queue WHERE status = 'pending' AND attempts = 0 AND locked_by IS NULL"); n != 6 {
		t.Errorf("%d rows handed back uncounted, want 6", n)
	}
	if n := count(t, pool, "SELECT count(*) FROM cms.call_queue WHERE status = 'running' AND locked_by = 'someone-else'"); n != 4 {
		t.Errorf("%d of another worker's rows still running, want 4", n)
	}
}

// The extender renews the leases of rows held, but not of rows whose
// settlement is in progress, and again of rows whose settlement rolled back.
func TestConsumerExtendsHeldRows(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	enqueue(t, pool, keys(0, 4))
	const lease = 600 * time.Millisecond
	c := newConsumer(t, pool, "slow", func(c *queue.Config) { c.Lease = lease })
	got := next(t, c, 4)
	claimedUntil := *state(t, pool, got[0]).LockedUntil

	// got[0:2] are being settled in a transaction that stays open. Settle
	// with a status that fails the statement keeps the rows unlocked, so
	// only the consumer's bookkeeping can keep the extender off them.
	if _, err := c.Settle(t.Context(), nil, []queue.Outcome{{Key: got[0], Status: "bogus"}, {Key: got[1], Status: "bogus"}}); err == nil {
		t.Fatal("Settle with a bogus status succeeded")
	}
	time.Sleep(lease)
	if u := *state(t, pool, got[0]).LockedUntil; !u.Equal(claimedUntil) {
		t.Errorf("a row being settled was extended: locked until %v, claimed until %v", u, claimedUntil)
	}
	if u := *state(t, pool, got[2]).LockedUntil; !u.After(claimedUntil) {
		t.Errorf("a held row was not extended: locked until %v, claimed until %v", u, claimedUntil)
	}
	c.Settled(got[:2], false)
	time.Sleep(lease)
	if u := *state(t, pool, got[0]).LockedUntil; !u.After(claimedUntil) {
		t.Errorf("a row whose settlement failed was not extended again: locked until %v", u)
	}
}

// Issue 9, defect 1: a commit's settlement and the lease extender locked the
// same rows in different orders and deadlocked. Here one worker settles
// shuffled batches inside transactions that stay open a moment, while its
// extender renews every row it holds, in random order, as fast as it can.
func TestSettleAndExtendNeverDeadlock(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	const n = 4000
	all := keys(0, n)
	enqueue(t, pool, all)
	q := newQueue(t, pool, "w", nil)
	claimed, _, err := q.Claim(t.Context(), n)
	if err != nil || len(claimed) != n {
		t.Fatalf("claim: %d, %v", len(claimed), err)
	}
	held := claimedKeys(claimed)
	rand.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })

	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var extendErr error
	wg.Go(func() {
		for ctx.Err() == nil {
			ks := append([]extract.Key(nil), held...)
			rand.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
			if err := q.Extend(ctx, ks); err != nil && ctx.Err() == nil {
				extendErr = err
				return
			}
		}
	})
	var settleErr error
	for start := 0; start < n && settleErr == nil; start += 500 {
		batch := held[start : start+500]
		settleErr = pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
			if _, err := q.Settle(t.Context(), tx, outcomes(batch, queue.StatusDone)); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond) // the rest of a commit
			return nil
		})
	}
	stop()
	wg.Wait()
	for _, err := range []error{settleErr, extendErr} {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "40P01" {
			t.Fatalf("deadlock: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := count(t, pool, "SELECT count(*) FROM cms.call_queue WHERE status = 'done'"); d != n {
		t.Fatalf("%d rows done, want %d", d, n)
	}
}

// A claim whose picked rows all turn failed (leases that expired on their
// last attempt: a crashed run's batch) returns no row; the consumer must not
// take the queue for drained while due rows are left.
func TestConsumerGoesOnAfterABatchThatAllTurnedFailed(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	enqueue(t, pool, keys(0, 10))
	// Rows 0..3: a crashed run held them on their fifth claim, lease expired.
	if _, err := pool.Exec(t.Context(), `UPDATE cms.call_queue SET status = 'running', attempts = 5, locked_by = 'dead',
		locked_until = now() - interval '1 minute', available_at = now() - interval '1 hour'
		WHERE call_id IN ('1659513159000-0', '1659513159000-1', '1659513159000-2', '1659513159000-3')`); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, pool, "w", func(c *queue.Config) { c.ClaimBatch = 4 })
	n := 0
	for {
		_, err := c.Next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 6 {
		t.Errorf("consumer handed out %d rows, want the 6 pending ones", n)
	}
}
