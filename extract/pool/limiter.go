package pool

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// AdaptiveLimiter is the one token bucket every attempt of the run passes
// through. When the API pushes back (429/503) the whole pool pauses until the
// server's Retry-After (or a backoff) and the rate is cut multiplicatively;
// afterwards it climbs back toward the configured rate in small steps, so one
// throttled worker slows everyone instead of each hitting the wall alone.
type AdaptiveLimiter struct {
	configured float64
	min        float64
	step       float64
	recover    time.Duration
	now        func() time.Time

	lim *rate.Limiter

	mu          sync.Mutex
	current     float64
	pausedUntil time.Time
	lastChange  time.Time
	cuts        int64
	pauses      int64
}

// NewAdaptiveLimiter returns a limiter for ratePerSec with the given burst.
// ratePerSec <= 0 means unlimited (no waiting, no adaptation).
func NewAdaptiveLimiter(ratePerSec float64, burst int) *AdaptiveLimiter {
	if burst < 1 {
		burst = 1
	}
	a := &AdaptiveLimiter{
		configured: ratePerSec,
		recover:    2 * time.Second,
		now:        time.Now,
	}
	if ratePerSec <= 0 {
		a.lim = rate.NewLimiter(rate.Inf, burst)
		return a
	}
	a.current = ratePerSec
	// Floor: never below 1/16 of the target or 0.5/s, so a run keeps moving.
	a.min = max(ratePerSec/16, 0.5)
	if a.min > ratePerSec {
		a.min = ratePerSec
	}
	a.step = max(ratePerSec/10, 0.5)
	a.lim = rate.NewLimiter(rate.Limit(ratePerSec), burst)
	a.lastChange = a.now()
	return a
}

// Wait blocks until the pool is not paused and a token is available.
func (a *AdaptiveLimiter) Wait(ctx context.Context) error {
	for {
		a.mu.Lock()
		until := a.pausedUntil
		a.mu.Unlock()
		d := until.Sub(a.now())
		if d <= 0 {
			break
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := a.lim.Wait(ctx); err != nil {
		return err
	}
	a.maybeRecover()
	return nil
}

// Throttled tells the limiter the server pushed back. retryAfter is the
// server's hint (0 when none); without one the pool pauses for a second.
func (a *AdaptiveLimiter) Throttled(retryAfter time.Duration) {
	if retryAfter <= 0 {
		retryAfter = time.Second
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if until := now.Add(retryAfter); until.After(a.pausedUntil) {
		a.pausedUntil = until
		a.pauses++
	}
	if a.configured <= 0 {
		return
	}
	// One cut per pause window: a burst of 429s from in-flight requests is one signal.
	if now.Sub(a.lastChange) < retryAfter && a.current < a.configured {
		return
	}
	next := max(a.current/2, a.min)
	if next < a.current {
		a.current = next
		a.cuts++
		a.lim.SetLimitAt(now, rate.Limit(next))
	}
	a.lastChange = now
}

func (a *AdaptiveLimiter) maybeRecover() {
	if a.configured <= 0 {
		return
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.current >= a.configured || now.Sub(a.lastChange) < a.recover || now.Before(a.pausedUntil) {
		return
	}
	a.current = min(a.current+a.step, a.configured)
	a.lastChange = now
	a.lim.SetLimitAt(now, rate.Limit(a.current))
}

// LimiterStats is a snapshot for the summary.
type LimiterStats struct {
	Configured float64 // requests/s asked for; 0 = unlimited
	Current    float64 // requests/s in force now
	Cuts       int64   // multiplicative decreases
	Pauses     int64   // pool-wide pauses on 429/503
}

// Stats returns a snapshot.
func (a *AdaptiveLimiter) Stats() LimiterStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return LimiterStats{Configured: a.configured, Current: a.current, Cuts: a.cuts, Pauses: a.pauses}
}
