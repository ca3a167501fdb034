// Package pool runs CC-CMS queries through a bounded set of workers that share
// one adaptive rate limiter, and decides when the whole run must stop.
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
)

// Querier is the CMS client as the pool uses it.
type Querier interface {
	Query(ctx context.Context, key extract.Key) cms.Result
}

// Config of the worker pool.
type Config struct {
	// Concurrency is the number of requests in flight. Default 8.
	Concurrency int
	// MaxTransientStreak stops the run after this many consecutive calls
	// ended transient after their last attempt: the API is down, and the next
	// run should process what is left rather than this one burning the whole
	// list into failures. Default 50; negative disables the check.
	MaxTransientStreak int
	// Stop, when set, is called once with the reason as soon as the pool
	// decides the run must stop, so the source stops feeding it.
	Stop func(error)
	// Halt, when set and done, makes workers pass the items still arriving
	// through unprocessed instead of querying them, while requests already
	// in flight finish (the grace period of an interrupt).
	Halt context.Context
}

// Defaults.
const (
	DefaultConcurrency        = 8
	DefaultMaxTransientStreak = 50
)

func (c *Config) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxTransientStreak == 0 {
		c.MaxTransientStreak = DefaultMaxTransientStreak
	}
}

// Validate names the bad field.
func (c Config) Validate() error {
	if c.Concurrency < 0 || c.Concurrency > 1024 {
		return fmt.Errorf("concurrency: %d is outside 1..1024", c.Concurrency)
	}
	return nil
}

// FatalError stops the run: the API refused our credentials or TLS failed.
type FatalError struct{ Result cms.Result }

func (e *FatalError) Error() string {
	r := e.Result
	if r.HTTPStatus != 0 {
		return fmt.Sprintf("fatal response from CC-CMS for %s: HTTP %d: %s", r.Key, r.HTTPStatus, r.Message)
	}
	return fmt.Sprintf("fatal error talking to CC-CMS for %s: %s", r.Key, r.Message)
}

func (e *FatalError) Unwrap() error { return e.Result.Err }

// ErrAPIDown is returned when MaxTransientStreak consecutive calls failed.
var ErrAPIDown = errors.New("CC-CMS looks unavailable: too many consecutive transient failures")

// Done is one input item with its outcome. Processed is false when the item
// was never queried (or its query was cut off) because the run is stopping:
// such items are left for the next run, not counted as failures.
type Done[T any] struct {
	Item      T
	Result    cms.Result
	Processed bool
}

// Counters observe every attempt; install Observe as cms.Config.OnAttempt.
type Counters struct {
	Attempts  atomic.Int64
	Retries   atomic.Int64
	Throttled atomic.Int64 // HTTP 429
	Unavail   atomic.Int64 // HTTP 503
	Latency   Histogram    // per attempt

	throttle func(time.Duration)
}

// NewCounters returns counters that also tell lim about throttling (lim may be nil).
func NewCounters(lim *AdaptiveLimiter) *Counters {
	c := &Counters{}
	if lim != nil {
		c.throttle = lim.Throttled
	}
	return c
}

// Observe records one attempt.
func (c *Counters) Observe(a cms.Attempt) {
	c.Attempts.Add(1)
	if a.Number > 1 {
		c.Retries.Add(1)
	}
	if a.HTTPStatus != 0 || a.Latency > 0 {
		c.Latency.Observe(a.Latency)
	}
	switch a.HTTPStatus {
	case 429:
		c.Throttled.Add(1)
	case 503:
		c.Unavail.Add(1)
	default:
		return
	}
	if c.throttle != nil {
		c.throttle(a.RetryAfter)
	}
}

// Run queries every item from in with cfg.Concurrency workers and sends one
// Done per item to out, then closes out. It returns a *FatalError or
// ErrAPIDown when it stopped the run, nil otherwise. Cancelling ctx cuts
// in-flight requests; items still arriving on in are passed through
// unprocessed, so the caller can account for every item.
func Run[T any](ctx context.Context, cfg Config, q Querier, in <-chan T, key func(T) extract.Key, out chan<- Done[T]) error {
	defer close(out)
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		for item := range in {
			out <- Done[T]{Item: item}
		}
		return err
	}
	halted := func() bool { return cfg.Halt != nil && cfg.Halt.Err() != nil }
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		streak   atomic.Int64
		stopOnce sync.Once
		stopErr  error
	)
	stop := func(err error) {
		stopOnce.Do(func() {
			stopErr = err
			cancel(err)
			if cfg.Stop != nil {
				cfg.Stop(err)
			}
		})
	}

	var g errgroup.Group
	for range cfg.Concurrency {
		g.Go(func() error {
			for item := range in {
				if ctx.Err() != nil || halted() {
					out <- Done[T]{Item: item}
					continue
				}
				res := q.Query(ctx, key(item))
				if res.Class == cms.ClassTransient && ctx.Err() != nil {
					// Cut off by the stop, not by the API: leave it for the next run.
					out <- Done[T]{Item: item, Result: res}
					continue
				}
				switch res.Class {
				case cms.ClassFatal:
					stop(&FatalError{Result: res})
				case cms.ClassTransient:
					if n := streak.Add(1); cfg.MaxTransientStreak > 0 && n >= int64(cfg.MaxTransientStreak) {
						stop(fmt.Errorf("%w (%d in a row, last: %s)", ErrAPIDown, n, res.Message))
					}
				case cms.ClassRejected:
				default:
					streak.Store(0)
				}
				out <- Done[T]{Item: item, Result: res, Processed: true}
			}
			return nil
		})
	}
	_ = g.Wait()
	return stopErr
}
