// Package pool runs calls through a bounded set of workers and decides when
// the whole run must stop: a fatal answer, a streak of transient failures
// (the API is down), or a streak of HTTP errors (the URL is wrong). It knows
// nothing of what the calls ask or answer: each call reports a Verdict. The
// calls pace themselves (the CMS client waits on the shared rate controller,
// package ratecontrol, before every attempt).
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// Verdict is what one call's outcome means for the run.
type Verdict int

const (
	// Answered: the API answered about the call, whatever it said. The
	// streaks end.
	Answered Verdict = iota
	// Rejected: never sent (invalid input); says nothing about the API.
	Rejected
	// Transient: failed transiently after its retries; counts toward the
	// streak that says the API is down.
	Transient
	// HTTPError: an HTTP-level permanent failure (404, 405, 400, 3xx): the
	// endpoint, not the call, may be wrong. Counts toward its own streak.
	HTTPError
	// Fatal: the run must stop at once (credentials refused, TLS failed,
	// the rate controller gave up).
	Fatal
)

// Call runs one item and says what its outcome means; err describes a
// Transient, HTTPError or Fatal outcome for the stop message.
type Call[T, A any] func(ctx context.Context, item T) (answer A, v Verdict, err error)

// Config of the worker pool.
type Config struct {
	// Concurrency is the number of calls in flight. Default 8.
	Concurrency int
	// MaxTransientStreak stops the run after this many consecutive calls
	// ended transient after their last attempt: the API is down, and the next
	// run should process what is left rather than this one burning the whole
	// list into failures. Default 50; negative disables the check.
	MaxTransientStreak int
	// MaxHTTPErrorStreak stops the run after this many consecutive calls
	// got an HTTP-level permanent failure: the endpoint is wrong, not the
	// calls. The calls of the streak are held back and, when it stops the
	// run, handed back unprocessed for the next run; a call the API answers
	// properly releases them as processed. Default 50; negative disables.
	MaxHTTPErrorStreak int
	// Stop, when set, is called once with the reason as soon as the pool
	// decides the run must stop, so the source stops feeding it.
	Stop func(error)
	// Halt, when set and done, makes workers pass the items still arriving
	// through unprocessed instead of calling them, while calls already in
	// flight finish (the grace period of an interrupt).
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

// FatalError stops the run: a call's answer forbids going on.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// ErrAPIDown is returned when MaxTransientStreak consecutive calls failed.
var ErrAPIDown = errors.New("CC-CMS looks unavailable: too many consecutive transient failures")

// ErrHTTPErrors is returned (wrapped with the last call's error, which names
// the status and the URL) when MaxHTTPErrorStreak consecutive calls got an
// HTTP-level permanent failure.
var ErrHTTPErrors = errors.New("CC-CMS answers every call with an HTTP error (check --api-url: the port, a proxy in between?)")

// Done is one input item with its answer. Processed is false when the item
// was never called (or its call was cut off) because the run is stopping:
// such items are left for the next run, not counted as failures.
type Done[T, A any] struct {
	Item      T
	Answer    A
	Processed bool
}

// Run calls every item from in with cfg.Concurrency workers and sends one
// Done per item to out, then closes out. It returns a *FatalError,
// ErrAPIDown or ErrHTTPErrors when it stopped the run, nil otherwise.
// Cancelling ctx cuts calls in flight (their Transient answer is passed on
// unprocessed); items still arriving on in are passed through unprocessed,
// so the caller can account for every item.
func Run[T, A any](ctx context.Context, cfg Config, call Call[T, A], in <-chan T, out chan<- Done[T, A]) error {
	defer close(out)
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		for item := range in {
			out <- Done[T, A]{Item: item}
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
		held   []Done[T, A]
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
					out <- Done[T, A]{Item: item}
					continue
				}
				a, v, err := call(ctx, item)
				switch {
				case v == Fatal:
					stop(&FatalError{Err: err})
					out <- Done[T, A]{Item: item, Answer: a}
					continue
				case v == Transient && ctx.Err() != nil:
					// Cut off by the stop, not by the API: leave it for the next run.
					out <- Done[T, A]{Item: item, Answer: a}
					continue
				case v == HTTPError:
					if ctx.Err() != nil {
						out <- Done[T, A]{Item: item, Answer: a} // the run is stopping: the endpoint, not the call
						continue
					}
					heldMu.Lock()
					held = append(held, Done[T, A]{Item: item, Answer: a, Processed: true})
					n := len(held)
					heldMu.Unlock()
					if cfg.MaxHTTPErrorStreak > 0 && n >= cfg.MaxHTTPErrorStreak {
						stop(fmt.Errorf("%w: %d calls in a row, last: %w", ErrHTTPErrors, n, err))
						release(false)
					} else if cfg.MaxHTTPErrorStreak < 0 {
						release(true)
					}
					continue
				case v == Transient:
					if n := streak.Add(1); cfg.MaxTransientStreak > 0 && n >= int64(cfg.MaxTransientStreak) {
						stop(fmt.Errorf("%w (%d in a row, last: %v)", ErrAPIDown, n, err))
					}
				case v == Answered:
					streak.Store(0)
					release(true)
				}
				out <- Done[T, A]{Item: item, Answer: a, Processed: true}
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
