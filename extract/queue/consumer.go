package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cmsetl/cms-etl/extract"
)

// Consumer feeds one run from the queue. Next hands out claimed rows one at a
// time, claiming Config.ClaimBatch rows whenever it has none left, until
// nothing is due or MaxItems or MaxDuration is reached; a follower
// (Config.Follow) waits for work instead of ending when nothing is due. While the consumer
// holds a row (from its claim until a settlement of it commits), a
// background loop renews its lease every third of Lease. Close hands back
// every row still held, so a run that stops early, for whatever reason,
// leaves nothing waiting for a lease to expire.
//
// Settlement is two-step because it usually runs inside the warehouse's
// transaction: Settle records outcomes (and stops renewing those rows'
// leases, so the extender and the settlement never touch a row at once);
// Settled then says whether the transaction committed. Rows of a transaction
// that did not commit are held again: renewed, and handed back by Close.
//
// A Consumer's methods may be called from different goroutines, but Next
// only from one at a time.
type Consumer struct {
	q        *Queue
	deadline time.Time // zero: no MaxDuration

	// Used by Next only.
	buf     []Claimed
	claimed int64
	drained bool

	mu   sync.Mutex
	held map[extract.Key]holdState // claimed, settlement not committed
	done bool                      // Close ran

	stopExtending context.CancelFunc
	extending     chan struct{} // closed when the extender returned

	listen     *listener          // a follower's; nil otherwise
	stopListen context.CancelFunc // ends the listener
	dbFailing  time.Time          // when a follower's claims started failing (Next only)
	dbWarned   time.Time          // when that was last logged
}

// outageLogEvery spaces a follower's warnings while its claims fail, so a
// database outage is a few log lines, not one per poll.
const outageLogEvery = 10 * time.Second

type holdState uint8

const (
	leased   holdState = iota // the extender renews it
	settling                  // in a settlement's transaction: not renewed
)

// NewConsumer starts a consumer on cfg's queue, and its lease extender. The
// extender outlives ctx's cancellation (the rows held are still being
// worked on during a grace period) and stops at Close, which must be called.
func NewConsumer(ctx context.Context, cfg Config) (*Consumer, error) {
	q, err := New(cfg)
	if err != nil {
		return nil, err
	}
	c := &Consumer{q: q, held: make(map[extract.Key]holdState), extending: make(chan struct{})}
	if q.cfg.MaxDuration > 0 {
		c.deadline = time.Now().Add(q.cfg.MaxDuration)
	}
	extCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	c.stopExtending = stop
	go c.extendLeases(extCtx)
	if q.cfg.Follow {
		lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		c.stopListen = stop
		c.listen = startListener(lctx, q.cfg.Pool.Config().ConnConfig.Copy(), q.log)
	}
	return c, nil
}

// Queue is the consumer's queue, for what a run asks of it besides rows
// (Depth, Tracking).
func (c *Consumer) Queue() *Queue { return c.q }

// Listening reports whether a follower's notification listener is
// connected (false: it only polls).
func (c *Consumer) Listening() bool { return c.listen != nil && c.listen.connected.Load() }

// Next returns the next claimed row, or io.EOF when the queue has nothing
// more due now or a bound is reached (rows backing off are for a later run).
// A follower's Next waits for work instead, until ctx ends (then it returns
// ctx's error) or its claims have failed for MaxDatabaseOutage.
func (c *Consumer) Next(ctx context.Context) (Claimed, error) {
	for len(c.buf) == 0 {
		if c.drained || (!c.deadline.IsZero() && time.Now().After(c.deadline)) {
			return Claimed{}, io.EOF
		}
		n := c.q.cfg.ClaimBatch
		if limit := c.q.cfg.MaxItems; limit > 0 {
			left := limit - c.claimed
			if left <= 0 {
				return Claimed{}, io.EOF
			}
			n = int(min(int64(n), left))
		}
		if c.listen != nil {
			c.listen.drain()
		}
		got, picked, err := c.q.Claim(ctx, n)
		if err != nil {
			if err := c.claimFailed(ctx, err); err != nil {
				return Claimed{}, err
			}
			continue
		}
		if !c.dbFailing.IsZero() {
			c.q.log.Info().Time("failing_since", c.dbFailing).Msg("claims succeed again")
			c.dbFailing, c.dbWarned = time.Time{}, time.Time{}
		}
		if picked == 0 {
			if !c.q.cfg.Follow {
				c.drained = true
				continue
			}
			if err := c.waitForWork(ctx); err != nil {
				return Claimed{}, err
			}
			continue
		}
		if len(got) == 0 {
			continue // every row picked turned failed: claim again
		}
		c.mu.Lock()
		if c.done {
			c.mu.Unlock()
			// Close ran while this claim was under way: hand these back too.
			_, err := c.q.ReleaseOwned(context.WithoutCancel(ctx))
			return Claimed{}, errors.Join(errClosed, err)
		}
		for _, r := range got {
			c.held[r.Key] = leased
		}
		c.mu.Unlock()
		c.claimed += int64(len(got))
		c.buf = got
	}
	r := c.buf[0]
	c.buf = c.buf[1:]
	return r, nil
}

// claimFailed decides what a failed claim means: for a run that drains the
// queue, the end (the error); for a follower, a wait and another try, until
// the database has failed for MaxDatabaseOutage.
func (c *Consumer) claimFailed(ctx context.Context, err error) error {
	if !c.q.cfg.Follow || ctx.Err() != nil {
		return err
	}
	now := time.Now()
	if c.dbFailing.IsZero() {
		c.dbFailing = now
	}
	if down := now.Sub(c.dbFailing); down >= c.q.cfg.MaxDatabaseOutage {
		return fmt.Errorf("the database failed every claim for %s: %w", down.Round(time.Second), err)
	}
	if now.Sub(c.dbWarned) >= outageLogEvery {
		c.dbWarned = now
		c.q.log.Warn().Err(err).Time("failing_since", c.dbFailing).Dur("gives_up_after", c.q.cfg.MaxDatabaseOutage).
			Msg("claim failed; trying again")
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(c.q.cfg.PollInterval):
		return nil
	}
}

// waitForWork waits until a follower should claim again: a notification,
// the next row falling due, or the poll interval, whichever comes first.
func (c *Consumer) waitForWork(ctx context.Context) error {
	wait := c.q.cfg.PollInterval
	if d, ok, err := c.q.nextDue(ctx); err == nil && ok {
		// A due row another worker's claim holds locked right now is
		// skipped: wait a little rather than spin.
		wait = min(wait, max(d, minFollowWait))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.listen.wake:
		return nil
	case <-t.C:
		return nil
	}
}

// minFollowWait is the shortest wait between a follower's idle claims.
const minFollowWait = 10 * time.Millisecond

// Buffered is how many claimed rows Next returns before it claims again.
// Only for the goroutine that calls Next.
func (c *Consumer) Buffered() int { return len(c.buf) }

// Settle records outcomes through db: the warehouse's transaction, or the
// pool when db is nil (a statement of its own). From this call the rows'
// leases are no longer renewed; the caller must then call Settled with the
// same keys once db's transaction has ended (for a nil db, once Settle
// returned). It returns the number of rows changed (see Queue.Settle).
func (c *Consumer) Settle(ctx context.Context, db Execer, outcomes []Outcome) (int64, error) {
	c.mu.Lock()
	for _, o := range outcomes {
		if _, ok := c.held[o.Key]; ok {
			c.held[o.Key] = settling
		}
	}
	c.mu.Unlock()
	if db == nil {
		db = c.q.cfg.Pool
	}
	return c.q.Settle(ctx, db, outcomes)
}

// Settled reports whether the transaction holding a Settle of keys
// committed. Committed rows are forgotten; the others are held again.
func (c *Consumer) Settled(keys []extract.Key, committed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if st, ok := c.held[k]; !ok || st != settling {
			continue // re-claimed since, or never held
		}
		if committed {
			delete(c.held, k)
		} else {
			c.held[k] = leased
		}
	}
}

// Held is the number of rows claimed whose settlement has not committed.
func (c *Consumer) Held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// Close stops the lease extender and hands back every row still running
// under this consumer's owner (Queue.ReleaseOwned): claimed but never handed
// out, handed out but never settled, settled in a transaction that did not
// commit, or claimed by a statement whose answer was lost to a cancelled
// context. They become pending and due at once, and their claim does not
// count against MaxAttempts: the run, not the row, stopped short. A row whose
// settlement did commit is not touched. Close returns how many rows it handed
// back; later calls do nothing.
func (c *Consumer) Close(ctx context.Context) (int64, error) {
	c.stopExtending()
	<-c.extending
	if c.listen != nil {
		c.stopListen()
		<-c.listen.done
	}
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return 0, nil
	}
	c.done = true
	clear(c.held)
	c.mu.Unlock()
	return c.q.ReleaseOwned(ctx)
}

// extendLeases renews the leases of the rows held and not being settled,
// every third of the lease, until Close.
func (c *Consumer) extendLeases(ctx context.Context) {
	defer close(c.extending)
	t := time.NewTicker(c.q.cfg.Lease / 3)
	defer t.Stop()
	var keys []extract.Key
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		keys = keys[:0]
		c.mu.Lock()
		for k, st := range c.held {
			if st == leased {
				keys = append(keys, k)
			}
		}
		c.mu.Unlock()
		if len(keys) == 0 {
			continue
		}
		if err := c.q.Extend(ctx, keys); err != nil && ctx.Err() == nil {
			c.q.log.Warn().Err(err).Int("rows", len(keys)).Msg("extend queue leases")
		}
	}
}
