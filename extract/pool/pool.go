// Package pool runs CC-CMS queries through a bounded set of workers that share
// one adaptive rate limiter (package ratecontrol), and decides when the whole
// run must stop: a fatal answer, a streak of transient failures (the API is
// down), a streak of HTTP errors (the URL is wrong), or the limiter giving up.
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/pool/ratecontrol"
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
	// MaxHTTPErrorStreak stops the run after this many consecutive calls
	// answered with an HTTP-level permanent failure (404, 405, 400, 3xx: a
	// *cms.StatusError): the endpoint is wrong, not the calls. The calls of
	// the streak are held back and, when it stops the run, handed back
	// unprocessed for the next run; a call the API answers properly releases
	// them as failed. Business codes (0100002...) are per call and never
	// count. Default 50; negative disables the check.
	MaxHTTPErrorStreak int
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
	DefaultMaxHTTPErrorStreak = 50
)

func (c *Config) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxTransientStreak == 0 {
		c.MaxTransientStreak = DefaultMaxTransientStreak
	}
	if c.MaxHTTPErrorStreak == 0 {
		c.MaxHTTPErrorStreak = DefaultMaxHTTPErrorStreak
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

// ErrHTTPErrors is returned (wrapped with the last *cms.StatusError, which
// names the status and the URL) when MaxHTTPErrorStreak consecutive calls
// got an HTTP-level permanent failure.
var ErrHTTPErrors = errors.New("CC-CMS answers every call with an HTTP error (check --api-url: the port, a proxy in between?)")

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
	Attempts atomic.Int64 // requests sent, retries included
	Retries  atomic.Int64 // sent requests after the first of their call
	// TransientRetries counts retries decided after a transient fault (not a
	// throttle): 5xx, 503 without Retry-After, timeouts, resets...
	TransientRetries atomic.Int64
	Throttled        atomic.Int64 // HTTP 429
	Unavail          atomic.Int64 // HTTP 503
	Latency          Histogram    // per answered attempt

	rate Observer
}

// Observer hears what each attempt says about the API's load:
// *ratecontrol.Controller.
type Observer interface {
	Observe(ratecontrol.Observation)
}

// NewCounters returns counters that also tell rate (may be nil) about every
// attempt the caller did not cancel.
func NewCounters(rate Observer) *Counters {
	return &Counters{rate: rate}
}

// Observe records one attempt.
func (c *Counters) Observe(a cms.Attempt) {
	if a.Sent {
		c.Attempts.Add(1)
		if a.Number > 1 {
			c.Retries.Add(1)
		}
	}
	if a.Retried && !a.Throttle {
		c.TransientRetries.Add(1)
	}
	if a.HTTPStatus != 0 {
		c.Latency.Observe(a.Latency)
	}
	switch a.HTTPStatus {
	case 429:
		c.Throttled.Add(1)
	case 503:
		c.Unavail.Add(1)
	}
	if c.rate != nil && !a.Canceled {
		c.rate.Observe(ratecontrol.Observation{Signal: signalOf(a), RetryAfter: a.RetryAfter, Latency: a.Latency})
	}
}

// signalOf is what one attempt says about the API's load: throttle (429,
// 503 with Retry-After), transient (any other transient failure) or ok (the
// API answered about the call, whatever it said).
func signalOf(a cms.Attempt) ratecontrol.Signal {
	switch {
	case a.Throttle:
		return ratecontrol.Throttle
	case a.Class == cms.ClassTransient:
		return ratecontrol.Transient
	}
	return ratecontrol.OK
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
	// held are the calls of the current streak of HTTP errors, waiting to
	// learn whether the endpoint or the calls are wrong.
	var (
		heldMu sync.Mutex
		held   []Done[T]
	)
	release := func(processed bool) {
		heldMu.Lock()
		ds := held
		held = nil
		heldMu.Unlock()
		for _, d := range ds {
			d.Processed = processed
			out <- d
		}
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
				if errors.Is(res.Err, ratecontrol.ErrStopped) {
					stop(res.Err)
					out <- Done[T]{Item: item, Result: res}
					continue
				}
				if res.Class == cms.ClassTransient && ctx.Err() != nil {
					// Cut off by the stop, not by the API: leave it for the next run.
					out <- Done[T]{Item: item, Result: res}
					continue
				}
				var se *cms.StatusError
				switch {
				case res.Class == cms.ClassPermanent && errors.As(res.Err, &se):
					if ctx.Err() != nil {
						out <- Done[T]{Item: item, Result: res} // the run is stopping: the endpoint, not the call
						continue
					}
					heldMu.Lock()
					held = append(held, Done[T]{Item: item, Result: res, Processed: true})
					n := len(held)
					heldMu.Unlock()
					if cfg.MaxHTTPErrorStreak > 0 && n >= cfg.MaxHTTPErrorStreak {
						stop(fmt.Errorf("%w: %d calls in a row, last: %w", ErrHTTPErrors, n, se))
						release(false)
					} else if cfg.MaxHTTPErrorStreak < 0 {
						release(true)
					}
					continue
				case res.Class == cms.ClassFatal:
					stop(&FatalError{Result: res})
				case res.Class == cms.ClassTransient:
					if n := streak.Add(1); cfg.MaxTransientStreak > 0 && n >= int64(cfg.MaxTransientStreak) {
						stop(fmt.Errorf("%w (%d in a row, last: %s)", ErrAPIDown, n, res.Message))
					}
				case res.Class == cms.ClassRejected:
				default:
					// The API answered about the call: neither down nor the wrong URL.
					streak.Store(0)
					release(true)
				}
				out <- Done[T]{Item: item, Result: res, Processed: true}
			}
			return nil
		})
	}
	_ = g.Wait()
	// A streak shorter than the limit at the end: real answers, unless the
	// run stopped for another reason and they belong to the next run.
	release(stopErr == nil)
	return stopErr
}
