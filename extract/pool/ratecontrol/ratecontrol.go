// Package ratecontrol paces every attempt of a run through one token bucket
// and adapts its rate to what the API says about its load.
//
// It hears small signals, not API records: each attempt ended ok (the API
// answered, whatever it said about the call), transient (a fault of that
// attempt: a 5xx, a 503 without Retry-After, a timeout, a reset, a truncated
// body, a "try again" business code) or throttle (the API pushed back: 429,
// or 503 with Retry-After). What it does with them follows the clients that
// are trusted with this (AWS SDK adaptive mode, gRPC and Envoy retry budgets):
//
//   - A throttle is one event per cooldown (at least a second, or the p95
//     latency if longer), however many requests in flight bring one back.
//     An event cuts the rate to Beta (0.7) times the lower of the limit and
//     the measured send rate, never below the floor. A Retry-After pauses the
//     whole pool that long; workers resume with a little jitter.
//   - A transient fault cuts nothing. Only sustained trouble, more than
//     TroubleShare of the attempts of a TroubleWindow failing transiently (at
//     least TroubleMinAttempts of them), counts as one throttle event for
//     that window: the API is struggling. Windows are consecutive, judged
//     when they end: judging a sliding window at every fault would take the
//     noise of a steady fault rate just under the share for trouble (at 10%
//     faults on first attempts, 9.1% of attempts, about half of all runs).
//   - After the last event the rate grows back along a CUBIC curve, AWS's
//     constants scaled to the ceiling (see Config.CubicScale), and only while
//     the limiter is what holds the run back (a caller waited for a token).
//   - Retries draw on a budget: at most BudgetShare of the attempts of the
//     last BudgetWindow (always BudgetMin). The client asks TryRetry before
//     each retry; a refused call ends transient for the next run.
//
// The ceiling is the configured rate, or a share of it when processes share
// one rate (package rategroup sets it with SetCeiling and relays the group's
// throttle events with GroupCut). No one-second window carries more than the
// ceiling in force plus the burst.
package ratecontrol

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Signal is what one attempt says about the API's load.
type Signal int

const (
	// OK: the API answered (success, no data, or a permanent answer about the call).
	OK Signal = iota
	// Transient: a fault of this attempt alone, retried for that call.
	Transient
	// Throttle: the API pushed back on load.
	Throttle
)

// Observation is one attempt as the controller hears it.
type Observation struct {
	Signal Signal
	// RetryAfter is the server's hint with a throttle (already clamped by the
	// client); 0 when none. Only a Retry-After pauses the pool.
	RetryAfter time.Duration
	// Latency of the attempt, for the cooldown; 0 when unknown.
	Latency time.Duration
}

// Config of a Controller. Zero values select the defaults below.
type Config struct {
	// Rate is the ceiling in requests per second; 0 means unlimited (no
	// pacing and no cuts; a Retry-After still pauses the pool).
	Rate float64
	// Burst is the token bucket's size. Default 1.
	Burst int

	// Beta is the factor of a cut. Default 0.7.
	Beta float64
	// MinCooldown is the shortest time between two throttle events; the p95
	// latency of recent attempts raises it. Default 1s.
	MinCooldown time.Duration
	// FloorDivisor keeps the rate at or above ceiling/FloorDivisor (and
	// 0.5/s), so a run keeps moving. Default 16.
	FloorDivisor float64
	// CubicScale sets the curve's constant C = CubicScale * ceiling (req/s
	// per s³). The default 0.004 is AWS's C = 0.4 at 100 req/s, at every
	// rate: back at the rate of the last cut 4.2 s after it, and at 90% of
	// the ceiling within 8.2 s from any rate.
	CubicScale float64
	// TroubleWindow, TroubleShare and TroubleMinAttempts define sustained
	// trouble. Defaults 10s, 0.10 and 20.
	TroubleWindow      time.Duration
	TroubleShare       float64
	TroubleMinAttempts int
	// BudgetWindow, BudgetShare and BudgetMin define the retry budget:
	// retries over the window at most max(BudgetMin, BudgetShare*attempts).
	// Defaults 10s, 0.20 and 10.
	BudgetWindow time.Duration
	BudgetShare  float64
	BudgetMin    int
	// PauseJitter bounds the random delay added to a pause for each waiting
	// worker, as a share of the pause (at most 250ms). Default 0.1.
	PauseJitter float64

	// OnThrottle, when set, is called (outside the controller's lock, from
	// the observing goroutine) for each throttle event this controller
	// detected, with the cooldown in force. It must not block.
	OnThrottle func(cooldown time.Duration)

	// Now and RandN are seams for tests; defaults time.Now and rand.Int64N.
	Now   func() time.Time
	RandN func(n int64) int64
}

// Defaults, declared once.
const (
	DefaultBurst              = 1
	DefaultBeta               = 0.7
	DefaultMinCooldown        = time.Second
	DefaultFloorDivisor       = 16.0
	DefaultCubicScale         = 0.004
	DefaultTroubleWindow      = 10 * time.Second
	DefaultTroubleShare       = 0.10
	DefaultTroubleMinAttempts = 20
	DefaultBudgetWindow       = 10 * time.Second
	DefaultBudgetShare        = 0.20
	DefaultBudgetMin          = 10
	DefaultPauseJitter        = 0.1

	maxPauseJitter = 250 * time.Millisecond
	minFloor       = 0.5 // requests per second
	latencySamples = 256
)

// Validate names the bad field.
func (c Config) Validate() error {
	switch {
	case !(c.Rate >= 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("rate: %v must be a finite number >= 0", c.Rate)
	case c.Burst < 0:
		return fmt.Errorf("burst: %d must be >= 1", c.Burst)
	case c.Beta < 0 || c.Beta >= 1:
		return fmt.Errorf("beta: %v must be in (0, 1)", c.Beta)
	case c.MinCooldown < 0:
		return fmt.Errorf("min cooldown: %v is negative", c.MinCooldown)
	case c.FloorDivisor < 0 || (c.FloorDivisor > 0 && c.FloorDivisor < 1):
		return fmt.Errorf("floor divisor: %v must be >= 1", c.FloorDivisor)
	case c.CubicScale < 0:
		return fmt.Errorf("cubic scale: %v is negative", c.CubicScale)
	case c.TroubleWindow < 0, c.BudgetWindow < 0:
		return errors.New("trouble window, budget window: must not be negative")
	case c.TroubleShare < 0 || c.TroubleShare > 1:
		return fmt.Errorf("trouble share: %v outside 0..1", c.TroubleShare)
	case c.BudgetShare < 0 || c.BudgetShare > 1:
		return fmt.Errorf("budget share: %v outside 0..1", c.BudgetShare)
	case c.TroubleMinAttempts < 0, c.BudgetMin < 0:
		return errors.New("trouble min attempts, budget min: must not be negative")
	case c.PauseJitter < 0 || c.PauseJitter > 1:
		return fmt.Errorf("pause jitter: %v outside 0..1", c.PauseJitter)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.Beta == 0 {
		c.Beta = DefaultBeta
	}
	if c.MinCooldown == 0 {
		c.MinCooldown = DefaultMinCooldown
	}
	if c.FloorDivisor == 0 {
		c.FloorDivisor = DefaultFloorDivisor
	}
	if c.CubicScale == 0 {
		c.CubicScale = DefaultCubicScale
	}
	if c.TroubleWindow == 0 {
		c.TroubleWindow = DefaultTroubleWindow
	}
	if c.TroubleShare == 0 {
		c.TroubleShare = DefaultTroubleShare
	}
	if c.TroubleMinAttempts == 0 {
		c.TroubleMinAttempts = DefaultTroubleMinAttempts
	}
	if c.BudgetWindow == 0 {
		c.BudgetWindow = DefaultBudgetWindow
	}
	if c.BudgetShare == 0 {
		c.BudgetShare = DefaultBudgetShare
	}
	if c.BudgetMin == 0 {
		c.BudgetMin = DefaultBudgetMin
	}
	if c.PauseJitter == 0 {
		c.PauseJitter = DefaultPauseJitter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RandN == nil {
		c.RandN = rand.Int64N
	}
	return c
}

// ErrStopped is wrapped by the error Wait returns after Stop: the pool ends
// the run with it.
var ErrStopped = errors.New("rate control stopped the run")

// Controller is the one limiter all workers of a run wait on. It is safe for
// concurrent use.
type Controller struct {
	cfg Config
	lim *rate.Limiter

	mu sync.Mutex
	// ceiling is what the limit may reach: the configured rate or the
	// group's share of it; 0 with a configured rate means no share yet.
	ceiling float64
	// lastCeiling is the last non-zero ceiling: a hold (SetCeiling(0))
	// keeps the cut for when a share comes back.
	lastCeiling float64
	limit       float64 // in force
	// lowered counts decreases of the limit: a worker whose token was
	// reserved at a higher rate takes a new one at the lower rate, so a cut
	// or a smaller group share holds at once, not after the reservations
	// already made (up to concurrency/rate seconds of them).
	lowered uint64
	// CUBIC state: the rate at the last event and the time the curve needs
	// to climb back to it.
	lastEvent time.Time
	wmax      float64
	k         float64 // seconds
	binding   bool    // a caller waited for a token since the limit last grew
	// Measured send rate: EWMA over half-second windows (0.8 on the newest).
	sendStart time.Time
	sendCount int64
	measured  float64
	hasRate   bool
	// Pool-wide pause for a Retry-After; changed is closed and replaced when
	// a pause, the ceiling or Stop may let waiters go (or hold them).
	pausedUntil time.Time
	changed     chan struct{}
	stopErr     error

	// The current trouble window: when it began, its attempts and the
	// transient ones.
	troubleStart                      time.Time
	troubleAttempts, troubleTransient int64
	budget                            window // attempts, retries granted
	lat                               [latencySamples]time.Duration
	latN                              int

	stats Stats
}

// Stats is a snapshot for the summary.
type Stats struct {
	Configured float64 // requests/s asked for; 0 = unlimited
	Ceiling    float64 // the ceiling in force: Configured, or the group share
	Limit      float64 // requests/s in force now (the final rate at the end)
	Measured   float64 // send rate, EWMA over half-second windows
	// ThrottleEvents counts the events this process detected: bursts of
	// throttles (one per cooldown) and windows of sustained trouble.
	ThrottleEvents int64
	// TroubleEvents is the part of ThrottleEvents due to sustained transient faults.
	TroubleEvents int64
	Cuts          int64 // decreases of the limit, the group's included
	GroupCuts     int64 // cuts for events another member of the group saw
	Pauses        int64 // pool-wide pauses for a Retry-After
	Retries       int64 // retries the budget granted
	// BudgetExhausted counts retries the budget refused: those calls ended transient.
	BudgetExhausted int64
}

// New validates cfg and returns a controller at the configured rate.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rate control: %w", err)
	}
	cfg = cfg.withDefaults()
	c := &Controller{
		cfg:     cfg,
		ceiling: cfg.Rate,
		limit:   cfg.Rate,
		changed: make(chan struct{}),
		budget:  newWindow(cfg.BudgetWindow),
	}
	c.stats.Configured = cfg.Rate
	if cfg.Rate > 0 {
		c.lim = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst)
	} else {
		c.lim = rate.NewLimiter(rate.Inf, cfg.Burst)
	}
	return c, nil
}

func (c *Controller) limited() bool { return c.cfg.Rate > 0 }

// Wait blocks until the pool is not paused, this process has a share of the
// rate, and a token is available; every attempt, retries included, calls it.
func (c *Controller) Wait(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.mu.Lock()
		if c.stopErr != nil {
			err := c.stopErr
			c.mu.Unlock()
			return err
		}
		now := c.cfg.Now()
		changed := c.changed
		var until time.Time
		switch {
		case now.Before(c.pausedUntil):
			until = c.pausedUntil.Add(c.jitterLocked(c.pausedUntil.Sub(now)))
		case c.limited() && c.ceiling <= 0:
			// No share yet: wait for SetCeiling.
		default:
			lowered := c.lowered
			r := c.lim.ReserveN(now, 1)
			d := r.DelayFrom(now)
			if d > 0 {
				c.binding = true
			}
			c.mu.Unlock()
			if d > 0 {
				if err := sleep(ctx, d, nil); err != nil {
					r.Cancel()
					return err
				}
			}
			c.mu.Lock()
			now = c.cfg.Now()
			if now.Before(c.pausedUntil) || c.stopErr != nil || (c.limited() && c.ceiling <= 0) || (d > 0 && c.lowered != lowered) {
				// A pause, a hold or a lower rate began while this worker
				// waited: the token is spent, and the worker waits again.
				c.mu.Unlock()
				continue
			}
			c.countSendLocked(now)
			c.recoverLocked(now)
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		var d time.Duration
		if !until.IsZero() {
			d = until.Sub(now)
		}
		if err := sleep(ctx, d, changed); err != nil {
			return err
		}
	}
}

// sleep waits d (forever when d is 0 and changed is set), until changed is
// closed, or until ctx ends.
func sleep(ctx context.Context, d time.Duration, changed <-chan struct{}) error {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timeout:
	case <-changed:
	}
	return nil
}

// jitterLocked is a worker's extra wait after a pause of the given length.
func (c *Controller) jitterLocked(pause time.Duration) time.Duration {
	j := min(time.Duration(float64(pause)*c.cfg.PauseJitter), maxPauseJitter)
	if j <= 0 {
		return 0
	}
	return time.Duration(c.cfg.RandN(int64(j)))
}

// wakeLocked lets every waiter re-examine the state.
func (c *Controller) wakeLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Observe takes one attempt's signal. Attempts the caller cancelled say
// nothing about the API and should not be observed.
func (c *Controller) Observe(o Observation) {
	c.mu.Lock()
	now := c.cfg.Now()
	if o.Latency > 0 {
		c.lat[c.latN%latencySamples] = o.Latency
		c.latN++
	}
	c.budget.add(now, 1, 0)
	event := false
	if c.troubleLocked(now) {
		if event = c.eventLocked(now); event {
			c.stats.TroubleEvents++
		}
	}
	c.troubleAttempts++
	switch o.Signal {
	case Throttle:
		if o.RetryAfter > 0 {
			c.pauseLocked(now, o.RetryAfter)
		}
		event = c.eventLocked(now) || event
	case Transient:
		c.troubleTransient++
	}
	c.recoverLocked(now)
	if !event || c.cfg.OnThrottle == nil {
		c.mu.Unlock()
		return
	}
	cooldown := c.cooldownLocked()
	c.mu.Unlock()
	c.cfg.OnThrottle(cooldown)
}

// troubleLocked closes the trouble window when it has ended and reports
// whether it was sustained trouble: enough attempts, too many of them
// transient.
func (c *Controller) troubleLocked(now time.Time) bool {
	if c.troubleStart.IsZero() {
		c.troubleStart = now
		return false
	}
	if now.Sub(c.troubleStart) < c.cfg.TroubleWindow {
		return false
	}
	attempts, transient := c.troubleAttempts, c.troubleTransient
	c.troubleStart, c.troubleAttempts, c.troubleTransient = now, 0, 0
	return attempts >= int64(c.cfg.TroubleMinAttempts) && float64(transient) > c.cfg.TroubleShare*float64(attempts)
}

func (c *Controller) pauseLocked(now time.Time, d time.Duration) {
	until := now.Add(d)
	if !until.After(c.pausedUntil) {
		return
	}
	if !now.Before(c.pausedUntil) {
		c.stats.Pauses++
	}
	c.pausedUntil = until
	c.wakeLocked() // waiters re-read the pause
}

// cooldownLocked is the shortest time between two events: the p95 latency of
// recent attempts, at least MinCooldown, so the answers to requests already
// in flight when the first throttle came back are part of the same event.
func (c *Controller) cooldownLocked() time.Duration {
	n := min(c.latN, latencySamples)
	if n == 0 {
		return c.cfg.MinCooldown
	}
	s := make([]time.Duration, n)
	copy(s, c.lat[:n])
	slices.Sort(s)
	p95 := s[min(n-1, int(math.Ceil(0.95*float64(n)))-1)]
	return max(c.cfg.MinCooldown, p95)
}

// eventLocked acts on a throttle event unless one was acted on within the
// cooldown; it reports whether this was a new event.
func (c *Controller) eventLocked(now time.Time) bool {
	if !c.lastEvent.IsZero() && absDur(now.Sub(c.lastEvent)) < c.cooldownLocked() {
		return false
	}
	c.stats.ThrottleEvents++
	c.cutLocked(now)
	return true
}

// cutLocked cuts the limit for an event acted on now: the limiter and the
// recovery curve start from now, never from an event's (possibly older)
// time, which would credit tokens already spent and restart the curve in
// the past.
func (c *Controller) cutLocked(now time.Time) {
	at := now
	c.lastEvent = now
	if !c.limited() || c.ceiling <= 0 {
		return
	}
	w := c.limit
	if m, ok := c.measuredLocked(at); ok && m < w {
		w = m
	}
	w = max(w, c.floorLocked())
	c.wmax = w
	c.k = math.Cbrt(w * (1 - c.cfg.Beta) / c.cubicCLocked())
	next := max(c.cfg.Beta*w, c.floorLocked())
	if next < c.limit {
		c.setLimitLocked(at, next)
		c.stats.Cuts++
	}
	c.binding = false
}

func (c *Controller) cubicCLocked() float64 { return c.cfg.CubicScale * c.ceiling }

func (c *Controller) floorLocked() float64 {
	return min(max(c.ceiling/c.cfg.FloorDivisor, minFloor), c.ceiling)
}

func (c *Controller) setLimitLocked(now time.Time, l float64) {
	if l < c.limit {
		c.lowered++
	}
	c.limit = l
	c.lim.SetLimitAt(now, rate.Limit(l))
}

// recoverLocked moves the limit along the curve toward the ceiling, only
// while the limiter is what holds the run back.
func (c *Controller) recoverLocked(now time.Time) {
	if !c.limited() || c.ceiling <= 0 || c.limit >= c.ceiling || !c.binding || now.Before(c.pausedUntil) {
		return
	}
	t := now.Sub(c.lastEvent).Seconds()
	d := t - c.k
	target := min(c.wmax+c.cubicCLocked()*d*d*d, c.ceiling)
	// Steps under 0.5% are not worth a limiter update.
	if target > c.limit*1.005 || (target == c.ceiling && target > c.limit) {
		c.setLimitLocked(now, target)
		c.binding = false
	}
}

const sendWindow = 500 * time.Millisecond

// countSendLocked counts a granted token toward the measured send rate.
func (c *Controller) countSendLocked(now time.Time) {
	if c.sendStart.IsZero() {
		c.sendStart = now
	}
	c.rollSendLocked(now)
	c.sendCount++
}

// rollSendLocked closes the half-second windows that ended before now. The
// first window opens with the first send.
func (c *Controller) rollSendLocked(now time.Time) {
	if c.sendStart.IsZero() {
		return
	}
	n := int64(now.Sub(c.sendStart) / sendWindow)
	if n <= 0 {
		return
	}
	r := float64(c.sendCount) / sendWindow.Seconds()
	if c.hasRate {
		c.measured = 0.8*r + 0.2*c.measured
	} else {
		c.measured, c.hasRate = r, true
	}
	// Empty windows since.
	c.measured *= math.Pow(0.2, float64(min(n-1, 64)))
	c.sendCount = 0
	c.sendStart = c.sendStart.Add(time.Duration(n) * sendWindow)
}

// measuredLocked is the send rate, once a window has been measured.
func (c *Controller) measuredLocked(now time.Time) (float64, bool) {
	c.rollSendLocked(now)
	return c.measured, c.hasRate
}

// TryRetry asks the budget for one retry; it counts a granted retry.
func (c *Controller) TryRetry() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	attempts, retries := c.budget.sum(now)
	allowed := max(float64(c.cfg.BudgetMin), c.cfg.BudgetShare*float64(attempts))
	if float64(retries+1) > allowed {
		c.stats.BudgetExhausted++
		return false
	}
	c.budget.add(now, 0, 1)
	c.stats.Retries++
	return true
}

// SetCeiling changes the ceiling (a group share). 0 holds every waiter until
// a later call gives a share. A limit below the old ceiling, while it
// recovers, keeps its place on the curve relative to the new ceiling.
func (c *Controller) SetCeiling(r float64) {
	if !c.limited() {
		return
	}
	r = min(max(r, 0), c.cfg.Rate)
	c.mu.Lock()
	defer c.mu.Unlock()
	if r == c.ceiling {
		return
	}
	now := c.cfg.Now()
	old := c.ceiling
	if old > 0 {
		c.lastCeiling = old
	}
	c.ceiling = r
	switch {
	case r <= 0:
		// A hold: the limit, and the cut in it, wait for the next share.
	case old <= 0 && c.lastCeiling <= 0, c.limit >= c.lastCeiling:
		c.setLimitLocked(now, r)
	default:
		// A new share keeps the cut: the limit moves in proportion.
		f := r / c.lastCeiling
		c.wmax *= f
		c.setLimitLocked(now, max(c.limit*f, c.floorLocked()))
	}
	c.wakeLocked()
}

// GroupCut applies a throttle event another member of the group saw at
// time at, unless this controller already acted on one within the cooldown
// of it. It reports whether it cut.
func (c *Controller) GroupCut(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	// An event within a cooldown of the last one acted on is the same
	// event; one older than it was met already (or is stale news).
	if !c.lastEvent.IsZero() && (at.Before(c.lastEvent) || at.Sub(c.lastEvent) < c.cooldownLocked()) {
		return false
	}
	before := c.stats.Cuts
	c.cutLocked(c.cfg.Now())
	if c.stats.Cuts > before {
		c.stats.GroupCuts++
	}
	return true
}

// Cooldown is the shortest time between two throttle events now.
func (c *Controller) Cooldown() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cooldownLocked()
}

// Stop makes every Wait, current and future, return an error wrapping
// ErrStopped and err: the pool then ends the run.
func (c *Controller) Stop(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopErr == nil {
		c.stopErr = fmt.Errorf("%w: %w", ErrStopped, err)
		c.wakeLocked()
	}
}

// Stats returns a snapshot.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Ceiling, s.Limit = c.ceiling, c.limit
	s.Measured, _ = c.measuredLocked(c.cfg.Now())
	return s
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// window counts two quantities over a sliding window of one-second buckets.
type window struct {
	width   time.Duration
	buckets []bucket
	head    int64 // bucket index of the newest bucket (time / width)
}

type bucket struct{ a, b int64 }

func newWindow(span time.Duration) window {
	n := max(int(span/time.Second), 1)
	return window{width: span / time.Duration(n), buckets: make([]bucket, n)}
}

func (w *window) advance(now time.Time) int64 {
	idx := now.UnixNano() / int64(w.width)
	n := int64(len(w.buckets))
	switch {
	case idx <= w.head:
		return w.head
	case idx-w.head >= n:
		clear(w.buckets)
	default:
		for i := w.head + 1; i <= idx; i++ {
			w.buckets[i%n] = bucket{}
		}
	}
	w.head = idx
	return idx
}

func (w *window) add(now time.Time, a, b int64) {
	i := w.advance(now) % int64(len(w.buckets))
	w.buckets[i].a += a
	w.buckets[i].b += b
}

func (w *window) sum(now time.Time) (a, b int64) {
	w.advance(now)
	for _, x := range w.buckets {
		a += x.a
		b += x.b
	}
	return a, b
}
