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
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

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

	// Probe, when set, makes the pool ride out an outage instead of stopping
	// (a long-running follower): a streak of MaxTransientStreak transient
	// failures pauses it. No call starts while paused (the caller's source,
	// no longer read, stops feeding it); Probe is tried with backoff until it
	// succeeds, then the calls resume. The calls of the streak and those that
	// fail transiently during the pause are called again after it instead of
	// being passed on as failures. A Probe error that is a *FatalError stops
	// the run (credentials refused while the API came back).
	Probe func(ctx context.Context) error
	// ProbeBase and ProbeCap bound the wait before each probe: it doubles
	// from ProbeBase up to ProbeCap, with jitter. Defaults 1s and 30s.
	ProbeBase, ProbeCap time.Duration
	// OnOutage, when set, hears the pool pause, each failed probe, and the
	// resumption (for logs and health checks). It must not block.
	OnOutage func(OutageEvent)
}

// OutageEvent is a change of a pool riding out an outage (Config.Probe).
type OutageEvent struct {
	Kind OutageKind
	// Err is the streak's last failure (Paused) or the probe's (ProbeFailed).
	Err error
	// Paused is how long the pool has been paused (ProbeFailed, Resumed).
	Paused time.Duration
	// Next is the wait before the next probe (ProbeFailed).
	Next time.Duration
}

// OutageKind says what an OutageEvent reports.
type OutageKind int

const (
	Paused      OutageKind = iota // the streak paused the calls
	ProbeFailed                   // the API still does not answer
	Resumed                       // a probe succeeded: calls resume
)

// Defaults.
const (
	DefaultConcurrency        = 8
	DefaultMaxTransientStreak = 50
	DefaultMaxHTTPErrorStreak = 50
	DefaultProbeBase          = time.Second
	DefaultProbeCap           = 30 * time.Second
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
	if c.ProbeBase == 0 {
		c.ProbeBase = DefaultProbeBase
	}
	if c.ProbeCap == 0 {
		c.ProbeCap = DefaultProbeCap
	}
}

// Validate names the bad field.
func (c Config) Validate() error {
	if c.Concurrency < 0 || c.Concurrency > 1024 {
		return fmt.Errorf("concurrency: %d is outside 1..1024", c.Concurrency)
	}
	if c.ProbeBase < 0 || c.ProbeCap < 0 {
		return errors.New("pool config: ProbeBase and ProbeCap must not be negative")
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
// so the caller can account for every item. With cfg.Probe a transient
// streak pauses the pool instead of stopping it (see Config.Probe).
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
	var haltDone <-chan struct{} // nil: never
	if cfg.Halt != nil {
		haltDone = cfg.Halt.Done()
	}
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

	// With a Probe: the outage gate, the calls of the current transient
	// streak (held until an answer says they failed on their own, or called
	// again after the pause the streak causes), and the calls waiting to be
	// called again.
	var (
		gate     *outage
		probes   sync.WaitGroup
		transMu  sync.Mutex
		trans    []Done[T, A]
		rerunMu  sync.Mutex
		rerun    []T
		rerunSig = make(chan struct{}, 1)
	)
	takeTrans := func() []Done[T, A] {
		transMu.Lock()
		defer transMu.Unlock()
		ds := trans
		trans = nil
		return ds
	}
	if cfg.Probe != nil {
		gate = newOutage()
	}
	signalRerun := func() {
		select {
		case rerunSig <- struct{}{}:
		default:
		}
	}
	pushRerun := func(items []T) {
		if len(items) == 0 {
			return
		}
		rerunMu.Lock()
		rerun = append(rerun, items...)
		rerunMu.Unlock()
		signalRerun()
	}
	popRerun := func() (T, bool) {
		rerunMu.Lock()
		defer rerunMu.Unlock()
		var zero T
		if len(rerun) == 0 {
			return zero, false
		}
		it := rerun[0]
		rerun[0] = zero
		rerun = rerun[1:]
		if len(rerun) > 0 {
			signalRerun() // wake another idle worker for the rest
		}
		return it, true
	}
	// next is the next item to call: one to call again first, else input.
	next := func() (T, bool) {
		for {
			if it, ok := popRerun(); ok {
				return it, true
			}
			select {
			case it, ok := <-in:
				return it, ok
			case <-rerunSig:
			}
		}
	}
	// startProbing pauses the pool (once per outage) and probes until the
	// API answers.
	startProbing := func(err error) {
		if !gate.pause() {
			return
		}
		if cfg.OnOutage != nil {
			cfg.OnOutage(OutageEvent{Kind: Paused, Err: err})
		}
		probes.Add(1)
		go func() {
			defer probes.Done()
			for attempt := 0; ; attempt++ {
				wait := probeWait(cfg.ProbeBase, cfg.ProbeCap, attempt)
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-haltDone:
					t.Stop()
					return
				case <-t.C:
				}
				err := cfg.Probe(ctx)
				if ctx.Err() != nil {
					return
				}
				var fe *FatalError
				switch {
				case err == nil:
					streak.Store(0)
					d := gate.resume()
					if cfg.OnOutage != nil {
						cfg.OnOutage(OutageEvent{Kind: Resumed, Paused: d})
					}
					return
				case errors.As(err, &fe):
					stop(fe)
					return
				}
				if cfg.OnOutage != nil {
					cfg.OnOutage(OutageEvent{Kind: ProbeFailed, Err: err, Paused: gate.pausedFor(),
						Next: probeWait(cfg.ProbeBase, cfg.ProbeCap, attempt+1)})
				}
			}
		}()
	}

	// process calls one item and sends its Done (or holds it, or queues it
	// to be called again).
	process := func(item T) {
		for {
			if ctx.Err() != nil || halted() {
				out <- Done[T, A]{Item: item}
				return
			}
			if gate != nil {
				select {
				case <-gate.wait():
				case <-ctx.Done():
					continue
				case <-haltDone:
					continue
				}
			}
			a, v, err := call(ctx, item)
			switch {
			case v == Fatal:
				stop(&FatalError{Err: err})
				out <- Done[T, A]{Item: item, Answer: a}
				return
			case v == Transient && ctx.Err() != nil:
				// Cut off by the stop, not by the API: leave it for the next run.
				out <- Done[T, A]{Item: item, Answer: a}
				return
			case v == HTTPError:
				if ctx.Err() != nil {
					out <- Done[T, A]{Item: item, Answer: a} // the run is stopping: the endpoint, not the call
					return
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
				return
			case v == Transient && gate != nil && cfg.MaxTransientStreak > 0:
				if gate.paused() {
					continue // failed during the outage: called again after it
				}
				if n := streak.Add(1); n >= int64(cfg.MaxTransientStreak) {
					startProbing(fmt.Errorf("%w (%d in a row, last: %v)", ErrAPIDown, n, err))
					var items []T
					for _, d := range takeTrans() {
						items = append(items, d.Item)
					}
					pushRerun(items)
					continue // this one too, after the outage
				}
				// Held until an answer says the API is up (then it is this
				// call's own failure) or the streak pauses the pool.
				transMu.Lock()
				trans = append(trans, Done[T, A]{Item: item, Answer: a, Processed: true})
				transMu.Unlock()
				return
			case v == Transient:
				if n := streak.Add(1); cfg.MaxTransientStreak > 0 && n >= int64(cfg.MaxTransientStreak) {
					stop(fmt.Errorf("%w (%d in a row, last: %v)", ErrAPIDown, n, err))
				}
			case v == Answered:
				streak.Store(0)
				release(true)
				for _, d := range takeTrans() {
					out <- d
				}
			}
			out <- Done[T, A]{Item: item, Answer: a, Processed: true}
			return
		}
	}

	var g errgroup.Group
	for range cfg.Concurrency {
		g.Go(func() error {
			for {
				item, ok := next()
				if !ok {
					return nil
				}
				process(item)
			}
		})
	}
	_ = g.Wait()
	cancel(nil)
	probes.Wait()
	// Calls still waiting to be called again when the input ended: the run
	// stopped, so they belong to the next one.
	for {
		it, ok := popRerun()
		if !ok {
			break
		}
		out <- Done[T, A]{Item: it}
	}
	// So are the calls of a transient streak no answer has explained.
	for _, d := range takeTrans() {
		d.Processed = false
		out <- d
	}
	// A streak shorter than the limit at the end: real answers, unless the
	// run stopped for another reason and they belong to the next run.
	release(stopErr == nil)
	return stopErr
}

// outage is the gate of a pool riding out an outage: open while the API
// answers, shut while the pool is paused.
type outage struct {
	mu    sync.Mutex
	open  chan struct{} // closed while open
	shut  bool
	since time.Time
}

func newOutage() *outage {
	o := &outage{open: make(chan struct{})}
	close(o.open)
	return o
}

// wait returns a channel closed while the gate is open.
func (o *outage) wait() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.open
}

func (o *outage) paused() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.shut
}

// pause shuts the gate; false when it was shut already.
func (o *outage) pause() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.shut {
		return false
	}
	o.shut, o.since, o.open = true, time.Now(), make(chan struct{})
	return true
}

// resume opens the gate and returns how long it was shut.
func (o *outage) resume() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.shut {
		return 0
	}
	o.shut = false
	close(o.open)
	return time.Since(o.since)
}

func (o *outage) pausedFor() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.shut {
		return 0
	}
	return time.Since(o.since)
}

// probeWait is the wait before probe number attempt (from 0): base doubling
// up to limit, the upper half jittered so followers paused together do not
// probe in step.
func probeWait(base, limit time.Duration, attempt int) time.Duration {
	d := limit
	if attempt < 30 {
		d = min(limit, base<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}
