package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/queue"
)

// produce inserts a key as a producer does (the documented contract).
func produce(t *testing.T, pool *pgxpool.Pool, k extract.Key) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), `INSERT INTO cms.call_queue (cc_id, vdn, call_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		k.CCID, k.VDN, k.CallID); err != nil {
		t.Fatal(err)
	}
}

type nextResult struct {
	c   queue.Claimed
	err error
	at  time.Time
}

// nextAsync runs c.Next in the background.
func nextAsync(ctx context.Context, c *queue.Consumer) <-chan nextResult {
	ch := make(chan nextResult, 1)
	go func() {
		r, err := c.Next(ctx)
		ch <- nextResult{r, err, time.Now()}
	}()
	return ch
}

// awaitClaim waits for the Next running in got to claim k, within bound of
// inserted; why says what the test waits on.
func awaitClaim(t *testing.T, got <-chan nextResult, k extract.Key, inserted time.Time, bound time.Duration, why string) queue.Claimed {
	t.Helper()
	select {
	case r := <-got:
		if r.err != nil || r.c.Key != k {
			t.Fatalf("Next = %+v, %v; want %v", r.c, r.err, k)
		}
		if d := r.at.Sub(inserted); d > bound {
			t.Fatalf("claimed %s after the insert, more than %s: %s", d, bound, why)
		}
		return r.c
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing claimed 10 s after the insert: %s", why)
	}
	return queue.Claimed{}
}

// waitListening waits for a follower's listener to be connected.
func waitListening(t *testing.T, c *queue.Consumer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !c.Listening() {
		if time.Now().After(deadline) {
			t.Fatal("the follower's listener did not connect")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A follower with nothing due waits instead of ending; the trigger's NOTIFY
// wakes it at once, long before its poll would.
func TestFollowerWakesOnNotify(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	c := newConsumer(t, pool, "follower", func(c *queue.Config) { c.Follow, c.PollInterval = true, time.Minute })
	waitListening(t, c)
	got := nextAsync(t.Context(), c)
	select {
	case r := <-got:
		t.Fatalf("Next on an empty queue returned %+v, %v; want it to wait", r.c, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	k := liveKey(time.Now(), 1)
	inserted := time.Now()
	produce(t, pool, k)
	claimed := awaitClaim(t, got, k, inserted, 2*time.Second, "the notification should wake a follower waiting with a 1-minute poll")
	if claimed.EnqueuedAt.IsZero() || claimed.NoDataAnswers != 0 {
		t.Fatalf("claimed %+v: want its enqueue time and no no-data answers", claimed)
	}
}

// Without the trigger (notifications lost, or a producer writing through a
// path that bypasses it) the poll finds new rows; cancelling ends the wait
// with the context's error.
func TestFollowerPollsWithoutTheTrigger(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	if _, err := pool.Exec(t.Context(), `DROP TRIGGER call_queue_notify ON cms.call_queue`); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, pool, "follower", func(c *queue.Config) { c.Follow, c.PollInterval = true, 200*time.Millisecond })
	waitListening(t, c)
	got := nextAsync(t.Context(), c)
	time.Sleep(300 * time.Millisecond)
	k := liveKey(time.Now(), 2)
	inserted := time.Now()
	produce(t, pool, k)
	awaitClaim(t, got, k, inserted, 3*time.Second, "the 200ms poll should find the row")

	ctx, cancel := context.WithCancel(t.Context())
	waiting := nextAsync(ctx, c)
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case r := <-waiting:
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("Next after cancel = %v, want context.Canceled", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return after its context was cancelled")
	}
}

// A tracked call's next poll is due TrackEvery after its answer: a follower
// claims it then, not at its next poll of the queue.
func TestFollowerClaimsTrackedPollsOnTime(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	const every = 400 * time.Millisecond
	c := newConsumer(t, pool, "follower", func(c *queue.Config) {
		c.Follow, c.PollInterval, c.TrackEvery = true, time.Minute, every
	})
	waitListening(t, c)
	k := liveKey(time.Now(), 3)
	produce(t, pool, k)
	r, err := c.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Queue().Tracking(r.LiveSince, time.Now()) {
		t.Fatal("Tracking = false for a first live answer with TrackEvery set")
	}
	answered := time.Now()
	if _, err := c.Settle(t.Context(), nil, []queue.Outcome{{Key: k, Status: queue.StatusTrack, Answer: json.RawMessage(`{"deviceType":3}`), AnswerAt: answered}}); err != nil {
		t.Fatal(err)
	}
	c.Settled([]extract.Key{k}, true)
	d, err := c.Queue().Depth(t.Context())
	if err != nil || d.Tracked != 1 || d.Due != 0 {
		t.Fatalf("Depth = %+v, %v; want 1 tracked, none due", d, err)
	}
	r, err = c.Next(t.Context())
	if err != nil || r.Key != k || r.LiveSince.IsZero() {
		t.Fatalf("poll = %+v, %v; want the tracked call", r, err)
	}
	if late := time.Since(answered) - every; late < -50*time.Millisecond || late > 2*time.Second {
		t.Fatalf("poll claimed %s after it was due", late)
	}
}

func TestTrackingEndsAtTrackMax(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	q := newQueue(t, pool, "w", func(c *queue.Config) { c.TrackEvery, c.TrackMax = time.Second, time.Minute })
	start := time.Now()
	tests := []struct {
		c    queue.Claimed
		at   time.Time
		want bool
	}{
		{queue.Claimed{}, start, true},                                       // first live answer
		{queue.Claimed{LiveSince: start}, start.Add(59 * time.Second), true}, // within TrackMax
		{queue.Claimed{LiveSince: start}, start.Add(time.Minute), false},     // TrackMax reached: the last answer
		{queue.Claimed{LiveSince: start}, start.Add(2 * time.Minute), false}, // past it
	}
	for _, tt := range tests {
		if got := q.Tracking(tt.c.LiveSince, tt.at); got != tt.want {
			t.Errorf("Tracking(since %v, at %v) = %v, want %v", tt.c.LiveSince, tt.at.Sub(start), got, tt.want)
		}
	}
	if newQueue(t, pool, "w", nil).Tracking(time.Time{}, start) {
		t.Error("Tracking = true without TrackEvery")
	}
}

// A source that writes keys as calls start (a pipe) has each key queued
// within about flushAfter, while the source is still open; a fast source
// still fills large batches.
func TestEnqueueStreamCommitsAsKeysArrive(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	more := make(chan extract.Key)
	src := func(yield func(queue.Entry, error) bool) {
		for k := range more {
			if !yield(queue.Entry{Key: k}, nil) {
				return
			}
		}
	}
	var flushes []queue.EnqueueReport
	done := make(chan error, 1)
	go func() {
		_, err := queue.EnqueueStream(t.Context(), pool, queue.QueryBasic, src, 100*time.Millisecond,
			func(r queue.EnqueueReport) { flushes = append(flushes, r) })
		done <- err
	}()
	for i := range 3 {
		k := liveKey(time.Now(), 10+i)
		sent := time.Now()
		more <- k
		for count(t, pool, "SELECT count(*) FROM cms.call_queue WHERE call_id = $1", k.CallID) == 0 {
			if time.Since(sent) > 3*time.Second {
				t.Fatalf("key %d not queued %s after it was written", i, time.Since(sent))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	close(more)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(flushes) != 3 || flushes[2].Read != 3 || flushes[2].Inserted != 3 {
		t.Fatalf("flushes %+v, want one per key, 3 read and inserted", flushes)
	}

	var big []queue.EnqueueReport
	rep, err := queue.EnqueueStream(t.Context(), pool, queue.QueryBasic, source(keys(100, 120_000)), time.Hour,
		func(r queue.EnqueueReport) { big = append(big, r) })
	if err != nil || rep.Inserted != 120_000 || len(big) != 3 {
		t.Fatalf("a fast source: %+v, %v in %d flushes; want 120000 in 3 batches", rep, err, len(big))
	}
}

// A follower rides out a database that fails its claims for less than
// MaxDatabaseOutage (it claims again once the database answers), and ends
// with the error when the claims fail for longer: the run then aborts
// (exit 1) instead of waiting forever. The claims fail here as they do when
// the queue cannot be read: the table is renamed away, then back.
func TestFollowerBoundsADatabaseOutage(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	const bound = time.Second
	c := newConsumer(t, pool, "follower", func(c *queue.Config) {
		c.Follow, c.PollInterval, c.MaxDatabaseOutage = true, 50*time.Millisecond, bound
	})
	waitListening(t, c)
	gone := func(away bool) {
		t.Helper()
		stmt := `ALTER TABLE cms.call_queue RENAME TO call_queue_gone`
		if !away {
			stmt = `ALTER TABLE cms.call_queue_gone RENAME TO call_queue`
		}
		if _, err := pool.Exec(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}

	gone(true)
	got := nextAsync(t.Context(), c)
	time.Sleep(bound / 2)
	gone(false)
	k := liveKey(time.Now(), 4)
	produce(t, pool, k)
	select {
	case r := <-got:
		if r.err != nil || r.c.Key != k {
			t.Fatalf("Next after a %s outage = %+v, %v; want %v", bound/2, r.c, r.err, k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follower did not claim again after the database came back")
	}

	gone(true)
	t.Cleanup(func() {
		_, _ = pool.Exec(context.WithoutCancel(t.Context()), `ALTER TABLE cms.call_queue_gone RENAME TO call_queue`)
	})
	started := time.Now()
	got = nextAsync(t.Context(), c)
	select {
	case r := <-got:
		if r.err == nil || !strings.Contains(r.err.Error(), "failed every claim") {
			t.Fatalf("Next with the database failing = %+v, %v; want the outage's error", r.c, r.err)
		}
		if d := time.Since(started); d < bound || d > bound+5*time.Second {
			t.Fatalf("Next gave up after %s, want about %s", d, bound)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the follower kept waiting on a database that fails every claim")
	}
}
