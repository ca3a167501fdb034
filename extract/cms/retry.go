package cms

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// clock holds the time seams of the retry loop so tests can run it with a
// fake clock and a deterministic jitter source.
type clock struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	// randN returns a uniform value in [0, n); n > 0.
	randN func(n int64) int64
}

var realClock = clock{now: time.Now, sleep: sleepCtx, randN: rand.Int64N}

// sleepCtx waits d or until ctx is done, whichever comes first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoffCeiling is min(cap, base*2^(n-1)) for attempt n (1-based), computed
// without overflow.
func backoffCeiling(base, ceiling time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}

// fullJitter draws the wait after attempt n: uniform in [0, ceiling).
func fullJitter(base, ceiling time.Duration, n int, randN func(int64) int64) time.Duration {
	c := backoffCeiling(base, ceiling, n)
	if c <= 0 {
		return 0
	}
	return time.Duration(randN(int64(c)))
}

// maxRetryAfterSeconds keeps seconds*time.Second from overflowing; anything
// this large is clamped anyway.
const maxRetryAfterSeconds = 1 << 32

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date
// (relative to now; a past date means 0). ok is false when absent or
// unparsable.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, maxRetryAfterSeconds)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// retryDelay is the wait before the attempt after attempt n: a positive
// Retry-After (already clamped) wins, otherwise full-jitter backoff.
func (c *Client) retryDelay(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return retryAfter
	}
	return fullJitter(c.cfg.BackoffBase, c.cfg.BackoffCap, n, c.clock.randN)
}
