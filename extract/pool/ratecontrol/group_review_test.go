package ratecontrol

import (
	"testing"
	"time"
)

// A group cut dated in the past (the other member's event, up to a
// heartbeat ago) must not hand out tokens for time the bucket has already
// accounted for: the workers waiting on reservations already made would be
// let through at once, on top of the lower rate.
func TestGroupCutInThePastCreditsNoTokens(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 100, Burst: 1})
	now := clk.Now()
	// Eight workers reserve a token each: the bucket owes ~7 tokens (70 ms).
	for range 8 {
		c.lim.ReserveN(now, 1)
	}
	before := c.lim.TokensAt(now)
	// Another member saw a throttle 500 ms ago.
	c.GroupCut(now.Add(-500 * time.Millisecond))
	after := c.lim.TokensAt(now)
	t.Logf("tokens before the cut %.2f, after %.2f (limit %.0f)", before, after, c.Stats().Limit)
	if after > before {
		t.Errorf("a cut added tokens: %.2f -> %.2f", before, after)
	}
}

// A group event older than this controller's own last event (seen late,
// after heartbeats failed for a while) moves lastEvent back in time: the
// recovery curve then starts seconds in the past and undoes the cut at once.
func TestStaleGroupCutHolds(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 100})
	c.Observe(throttle) // own event: 100 -> 70
	clk.advance(100 * time.Millisecond)
	c.GroupCut(clk.Now().Add(-3 * time.Second)) // the group's, recorded 3 s ago
	after := c.Stats().Limit
	clk.advance(10 * time.Millisecond)
	hold(c)
	c.Observe(ok)
	t.Logf("limit after own cut 70, after the group cut %.1f, 10 ms later %.1f", after, c.Stats().Limit)
	if l := c.Stats().Limit; l > after*1.1 {
		t.Errorf("the group cut was undone within 10 ms: %.1f -> %.1f", after, l)
	}
	if after != 70 {
		t.Errorf("a group event older than the own one cut again: %.1f, want 70", after)
	}
}

// A member held for a moment (its heartbeat late) must come back with the
// cut a throttle made just before, not at its full share.
func TestHoldKeepsTheCut(t *testing.T) {
	t.Parallel()
	c, _ := newTest(t, Config{Rate: 100})
	c.Observe(throttle) // 100 -> 70
	c.SetCeiling(0)
	c.SetCeiling(100)
	if l := c.Stats().Limit; l > 70 {
		t.Errorf("after a hold the limit is %.0f; the cut to 70 is forgotten", l)
	}
}
