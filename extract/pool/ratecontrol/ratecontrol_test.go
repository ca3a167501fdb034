package ratecontrol

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for the controller's decisions.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1700000000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newTest(t *testing.T, cfg Config) (*Controller, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	cfg.Now = clk.Now
	if cfg.RandN == nil {
		cfg.RandN = func(n int64) int64 { return n / 2 }
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

// hold says the limiter held the run back since the last step, as a waiting
// worker would.
func hold(c *Controller) {
	c.mu.Lock()
	c.binding = true
	c.mu.Unlock()
}

var (
	ok        = Observation{Signal: OK, Latency: 20 * time.Millisecond}
	transient = Observation{Signal: Transient, Latency: 20 * time.Millisecond}
	throttle  = Observation{Signal: Throttle, Latency: 20 * time.Millisecond}
)

func TestBurstOfThrottlesIsOneCut(t *testing.T) {
	t.Parallel()
	var published atomic.Int64
	c, clk := newTest(t, Config{Rate: 100, OnThrottle: func(time.Duration) { published.Add(1) }})
	// The answers of 30 requests in flight, spread over 300 ms.
	for range 30 {
		c.Observe(throttle)
		clk.advance(10 * time.Millisecond)
	}
	s := c.Stats()
	if s.ThrottleEvents != 1 || s.Cuts != 1 || s.Limit != 70 || s.Pauses != 0 || published.Load() != 1 {
		t.Fatalf("after a burst of 429s: %+v, published %d; want one event, one cut to 70, no pause", s, published.Load())
	}
	// After the cooldown, a new throttle is a new event.
	clk.advance(time.Second)
	c.Observe(throttle)
	if s := c.Stats(); s.ThrottleEvents != 2 || s.Cuts != 2 || math.Abs(s.Limit-49) > 1e-9 {
		t.Fatalf("throttle after the cooldown: %+v, want a second cut to 49", s)
	}
}

func TestCooldownFollowsP95Latency(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 100})
	for range 100 {
		c.Observe(Observation{Signal: OK, Latency: 3 * time.Second})
	}
	if got := c.Cooldown(); got < 3*time.Second {
		t.Fatalf("cooldown %v with 3 s latencies, want at least 3 s", got)
	}
	c.Observe(throttle)
	clk.advance(2 * time.Second)
	c.Observe(throttle) // a slow request sent before the cut
	if s := c.Stats(); s.Cuts != 1 {
		t.Fatalf("%d cuts; the second throttle came within the p95 latency of the first", s.Cuts)
	}
}

func TestTransientFaultsNeitherPauseNorCut(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 300})
	// 5% transient (503 without Retry-After, resets...) for a minute at 300/s.
	for i := range 60 * 300 {
		if i%20 == 0 {
			c.Observe(transient)
		} else {
			c.Observe(ok)
		}
		clk.advance(time.Second / 300)
	}
	s := c.Stats()
	if s.ThrottleEvents != 0 || s.Cuts != 0 || s.Pauses != 0 || s.Limit != 300 {
		t.Fatalf("sporadic transient faults changed the rate: %+v", s)
	}
	// Wait does not block: there is no pause.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestSustainedTroubleCutsOncePerWindow(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 100})
	// 30% of attempts transient for 35 s at 100 attempts a second.
	for i := range 35 * 100 {
		if i%10 < 3 {
			c.Observe(transient)
		} else {
			c.Observe(ok)
		}
		clk.advance(10 * time.Millisecond)
	}
	s := c.Stats()
	// Windows end at 10, 20 and 30 s.
	if s.TroubleEvents != 3 || s.ThrottleEvents != 3 || s.Cuts != 3 {
		t.Fatalf("%+v; want one event and cut per 10 s window: 3", s)
	}
	// Too few attempts in a window: no judgement.
	c2, clk2 := newTest(t, Config{Rate: 100})
	for range 60 {
		c2.Observe(transient)
		clk2.advance(550 * time.Millisecond)
	}
	if s := c2.Stats(); s.Cuts != 0 {
		t.Fatalf("19 attempts judged: %+v", s)
	}
	// 9% transient, evenly spread: under the share.
	c3, clk3 := newTest(t, Config{Rate: 100})
	for i := range 30 * 100 {
		if (i+1)*9/100 > i*9/100 {
			c3.Observe(transient)
		} else {
			c3.Observe(ok)
		}
		clk3.advance(10 * time.Millisecond)
	}
	if s := c3.Stats(); s.Cuts != 0 {
		t.Fatalf("9%% transient cut the rate: %+v", s)
	}
}

func TestRetryAfterPausesThePool(t *testing.T) {
	t.Parallel()
	c, _ := newTest(t, Config{Rate: 100})
	c.Observe(Observation{Signal: Throttle, RetryAfter: 2 * time.Second})
	c.Observe(Observation{Signal: Throttle, RetryAfter: 2 * time.Second}) // in flight: same pause
	if s := c.Stats(); s.Pauses != 1 || s.Cuts != 1 {
		t.Fatalf("%+v; want one pause and one cut", s)
	}
	// The fake clock stands still inside the pause: Wait must not return.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := c.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait during the pause = %v, want the deadline", err)
	}
	// A throttle without Retry-After cuts (after the cooldown) but does not pause.
	c2, _ := newTest(t, Config{Rate: 100})
	c2.Observe(throttle)
	if s := c2.Stats(); s.Pauses != 0 || s.Cuts != 1 {
		t.Fatalf("429 without Retry-After: %+v", s)
	}
}

// Workers leave a pause spread over a little jitter, not all at once.
func TestPauseEndsWithJitter(t *testing.T) {
	t.Parallel()
	var draws atomic.Int64
	c, err := New(Config{Rate: 1000, Burst: 10, RandN: func(n int64) int64 {
		// Spread 0, 1/4, 2/4, 3/4 of the jitter over the workers.
		return n * (draws.Add(1) % 4) / 4
	}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.Observe(Observation{Signal: Throttle, RetryAfter: 400 * time.Millisecond})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var released []time.Duration
	for range 4 {
		wg.Go(func() {
			if err := c.Wait(t.Context()); err != nil {
				t.Error(err)
			}
			mu.Lock()
			released = append(released, time.Since(start))
			mu.Unlock()
		})
	}
	wg.Wait()
	lo, hi := released[0], released[0]
	for _, d := range released {
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 400*time.Millisecond {
		t.Errorf("a worker left the 400 ms pause after %v", lo)
	}
	// Jitter is 10% of the pause: 40 ms; the draws spread 30 ms of it.
	if hi-lo < 20*time.Millisecond {
		t.Errorf("workers left the pause within %v of each other: %v", hi-lo, released)
	}
}

func TestRecoveryCurve(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{10, 100, 300, 500} {
		for _, depth := range []int{1, 3, 12} { // cuts in a row before the API recovers
			c, clk := newTest(t, Config{Rate: rate})
			for range depth {
				c.Observe(throttle)
				clk.advance(1100 * time.Millisecond)
			}
			c.Observe(throttle)
			cutTo := c.Stats().Limit
			last := cutTo
			var at90 time.Duration
			for step := time.Duration(0); step <= 20*time.Second; step += 50 * time.Millisecond {
				hold(c)
				c.Observe(ok)
				l := c.Stats().Limit
				if l < last-1e-9 || l > rate {
					t.Fatalf("rate %v depth %d: limit went from %v to %v at %v", rate, depth, last, l, step)
				}
				last = l
				if at90 == 0 && l >= 0.9*rate {
					at90 = step
				}
				clk.advance(50 * time.Millisecond)
			}
			if at90 == 0 || at90 > 10*time.Second {
				t.Errorf("rate %v after %d cuts (to %.1f): 90%% reached after %v, want within 10 s", rate, depth+1, cutTo, at90)
			}
			if last != rate {
				t.Errorf("rate %v: limit %v after 20 s, want back at the ceiling", rate, last)
			}
		}
	}
}

// CUBIC: close to the rate of the last cut for a while, then beyond it.
func TestRecoveryPlateausNearTheLastRate(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 300})
	// A server that takes 150/s: the limit was 150 when it throttled.
	c.SetCeiling(150)
	c.SetCeiling(300) // not recovering: the limit follows the ceiling
	c.mu.Lock()
	c.setLimitLocked(clk.Now(), 150)
	c.mu.Unlock()
	c.Observe(throttle)
	for step := time.Duration(0); step < 6*time.Second; step += 50 * time.Millisecond {
		hold(c)
		c.Observe(ok)
		clk.advance(50 * time.Millisecond)
		l := c.Stats().Limit
		if step > 2*time.Second && step < 5*time.Second && (l < 135 || l > 165) {
			t.Fatalf("limit %v at %v; want near 150 on the plateau", l, step)
		}
	}
}

func TestNoGrowthWhileTheLimiterIsNotTheBottleneck(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 100})
	c.Observe(throttle)
	for range 400 {
		c.Observe(ok) // answers, but nobody waited for a token
		clk.advance(50 * time.Millisecond)
	}
	if l := c.Stats().Limit; l != 70 {
		t.Fatalf("limit grew to %v without the limiter holding anything back", l)
	}
	hold(c)
	c.Observe(ok)
	if l := c.Stats().Limit; l != 100 {
		t.Fatalf("limit %v once the limiter held the run back 20 s after the cut; want the ceiling", l)
	}
}

func TestCutUsesTheMeasuredSendRate(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 100})
	// 40 grants a second for 3 s: the run sends far below the limit.
	for range 120 {
		c.mu.Lock()
		c.countSendLocked(clk.Now())
		c.mu.Unlock()
		clk.advance(25 * time.Millisecond)
	}
	c.Observe(throttle)
	if l := c.Stats().Limit; math.Abs(l-28) > 2 {
		t.Fatalf("limit %v after a throttle at 40 req/s sent; want 0.7*40 = 28", l)
	}
}

func TestFloor(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 100})
	for range 50 {
		c.Observe(throttle)
		clk.advance(1100 * time.Millisecond)
	}
	if s := c.Stats(); s.Limit != 100.0/16 {
		t.Fatalf("limit %v after 50 cuts, want the floor %v", s.Limit, 100.0/16)
	}
	c2, clk2 := newTest(t, Config{Rate: 2})
	for range 20 {
		c2.Observe(throttle)
		clk2.advance(1100 * time.Millisecond)
	}
	if s := c2.Stats(); s.Limit != 0.5 {
		t.Fatalf("limit %v at --rate 2, want the absolute floor 0.5", s.Limit)
	}
}

func TestRetryBudget(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 100})
	// A few retries are always allowed.
	for i := range DefaultBudgetMin {
		if !c.TryRetry() {
			t.Fatalf("retry %d refused with no attempts yet", i+1)
		}
	}
	if c.TryRetry() {
		t.Fatal("retry beyond the minimum allowed with no attempts")
	}
	// 200 attempts in the window: 20% = 40 retries, 10 already used.
	for range 200 {
		c.Observe(ok)
	}
	granted := 0
	for c.TryRetry() {
		granted++
	}
	if granted != 30 {
		t.Fatalf("granted %d more retries, want 30 (40 = 20%% of 200, minus 10)", granted)
	}
	if s := c.Stats(); s.BudgetExhausted != 2 || s.Retries != 40 {
		t.Fatalf("%+v; want 2 refusals, 40 retries", s)
	}
	// The window slides: 10 s later the old attempts and retries are gone.
	clk.advance(11 * time.Second)
	if !c.TryRetry() {
		t.Fatal("retry refused after the window slid past the old retries")
	}
}

func TestUnlimitedOnlyPauses(t *testing.T) {
	t.Parallel()
	c, _ := newTest(t, Config{Rate: 0})
	c.Observe(Observation{Signal: Throttle, RetryAfter: time.Second})
	if s := c.Stats(); s.Cuts != 0 || s.Pauses != 1 || s.Limit != 0 {
		t.Fatalf("%+v; want a pause and no cut", s)
	}
}

func TestCeilingAndHold(t *testing.T) {
	t.Parallel()
	c, err := New(Config{Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	c.SetCeiling(0) // a new group member without a share yet
	done := make(chan error, 1)
	go func() { done <- c.Wait(t.Context()) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v without a share", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.SetCeiling(500) // above --rate: clamped
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Ceiling != 200 || s.Limit != 200 {
		t.Fatalf("%+v; want the ceiling clamped to --rate", s)
	}
	c.SetCeiling(100)
	if s := c.Stats(); s.Limit != 100 {
		t.Fatalf("limit %v after the share dropped to 100", s.Limit)
	}
	// While recovering, a new share scales the limit: it keeps its place.
	c.Observe(throttle)
	c.SetCeiling(50)
	if s := c.Stats(); s.Limit != 35 {
		t.Fatalf("limit %v: 70 of 100 became %v of 50, want 35", s.Limit, s.Limit)
	}
}

func TestGroupCut(t *testing.T) {
	t.Parallel()
	c, clk := newTest(t, Config{Rate: 100})
	if !c.GroupCut(clk.Now()) {
		t.Fatal("a group event was not applied")
	}
	if c.GroupCut(clk.Now().Add(200 * time.Millisecond)) {
		t.Fatal("a second group event within the cooldown was applied")
	}
	// This process saw the same event itself just before: one cut in all.
	c.Observe(throttle)
	if s := c.Stats(); s.Cuts != 1 || s.GroupCuts != 1 || s.ThrottleEvents != 0 || s.Limit != 70 {
		t.Fatalf("%+v; want one cut, from the group", s)
	}
	clk.advance(2 * time.Second)
	c.Observe(throttle) // its own event
	if c.GroupCut(clk.Now().Add(-300 * time.Millisecond)) {
		t.Fatal("the group's record of this process's own event cut again")
	}
	if s := c.Stats(); s.Cuts != 2 || s.ThrottleEvents != 1 {
		t.Fatalf("%+v", s)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	c, err := New(Config{Rate: 10})
	if err != nil {
		t.Fatal(err)
	}
	c.SetCeiling(0)
	done := make(chan error, 1)
	go func() { done <- c.Wait(t.Context()) }()
	c.Stop(errors.New("rate group lost"))
	if err := <-done; !errors.Is(err, ErrStopped) {
		t.Fatalf("Wait = %v, want ErrStopped", err)
	}
}

// No one-second window carries more than the limit in force plus the burst,
// while the limit is cut and recovers.
func TestWaitNeverExceedsRatePlusBurst(t *testing.T) {
	t.Parallel()
	const rate, burst = 200.0, 5
	c, err := New(Config{Rate: rate, Burst: burst})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	var mu sync.Mutex
	var grants []time.Time
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				if err := c.Wait(ctx); err != nil {
					return
				}
				mu.Lock()
				grants = append(grants, time.Now())
				mu.Unlock()
				if w == 0 && i%150 == 0 {
					c.Observe(throttle)
				} else {
					c.Observe(ok)
				}
			}
		})
	}
	wg.Wait()
	for i := range grants {
		j := i
		for j < len(grants) && grants[j].Sub(grants[i]) < time.Second {
			j++
		}
		if n := j - i; n > int(rate)+burst {
			t.Fatalf("%d grants within one second from %v, want at most %d", n, grants[i], int(rate)+burst)
		}
	}
	if c.Stats().Cuts == 0 {
		t.Fatal("the test never cut the rate")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Rate: -1}, "rate"},
		{Config{Rate: math.Inf(1)}, "rate"},
		{Config{Burst: -1}, "burst"},
		{Config{Beta: 1.5}, "beta"},
		{Config{TroubleShare: 2}, "trouble share"},
		{Config{BudgetShare: -0.1}, "budget share"},
		{Config{FloorDivisor: 0.5}, "floor divisor"},
	} {
		if _, err := New(tc.cfg); err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %q", tc.cfg, err, tc.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// A lower limit holds at once: workers whose tokens were reserved at the old
// rate take new ones, rather than going out on the old schedule.
func TestLowerLimitRepacesWaitingWorkers(t *testing.T) {
	t.Parallel()
	c, err := New(Config{Rate: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(t.Context()); err != nil { // the burst token
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	var grants atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for c.Wait(ctx) == nil {
				grants.Add(1)
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // the eight reserve 100, 200, ... 800 ms ahead
	c.SetCeiling(1)
	wg.Wait()
	// At 1/s after the debt of the old reservations: at most a couple in
	// 1.5 s, not the eight reserved at 10/s.
	if n := grants.Load(); n > 2 {
		t.Fatalf("%d grants in 1.5 s after the limit fell to 1/s", n)
	}
}
