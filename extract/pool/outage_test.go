package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// api is a scripted API that can be down: every call fails transiently and
// every probe fails while it is.
type api struct {
	down   atomic.Bool
	calls  atomic.Int64
	probes atomic.Int64
	fatal  atomic.Bool // probes answer with a fatal error
}

func (a *api) call(ctx context.Context, i int) (answer, Verdict, error) {
	a.calls.Add(1)
	if a.down.Load() {
		return answer{i, Transient}, Transient, errors.New("HTTP 502")
	}
	return answer{i, Answered}, Answered, nil
}

func (a *api) probe(context.Context) error {
	a.probes.Add(1)
	if a.fatal.Load() {
		return &FatalError{Err: errors.New("HTTP 401")}
	}
	if a.down.Load() {
		return errors.New("HTTP 502")
	}
	return nil
}

// events records a pool's outage events.
type events struct {
	mu sync.Mutex
	ev []OutageEvent
}

func (e *events) add(ev OutageEvent) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }

func (e *events) kinds() (paused, failed, resumed int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.ev {
		switch ev.Kind {
		case Paused:
			paused++
		case ProbeFailed:
			failed++
		case Resumed:
			resumed++
		}
	}
	return
}

func followConfig(a *api, ev *events) Config {
	return Config{Concurrency: 4, MaxTransientStreak: 5, Probe: a.probe, ProbeBase: 2 * time.Millisecond,
		ProbeCap: 10 * time.Millisecond, OnOutage: ev.add}
}

// A follower's pool pauses on the streak instead of stopping, probes until
// the API answers, resumes, and calls again every call the outage failed:
// no item ends as a transient failure, none is lost.
func TestProbeRidesOutAnOutage(t *testing.T) {
	t.Parallel()
	a := &api{}
	a.down.Store(true)
	ev := &events{}
	in := make(chan int)
	out := make(chan Done[int, answer], 1000)
	errc := make(chan error, 1)
	go func() { errc <- Run(t.Context(), followConfig(a, ev), a.call, in, out) }()
	const n = 200
	go func() {
		for i := range n {
			in <- i
		}
		close(in)
	}()
	go func() {
		waitUntil(t, func() bool { p, _, _ := ev.kinds(); return p == 1 })
		waitUntil(t, func() bool { return a.probes.Load() >= 3 })
		// Paused: the input is not read beyond what the workers hold.
		if len(in) > 0 || a.calls.Load() > 40 {
			t.Errorf("%d calls during the outage: the pause did not hold them", a.calls.Load())
		}
		a.down.Store(false)
	}()
	got := map[int]bool{}
	for d := range out {
		if !d.Processed || d.Answer.v != Answered {
			t.Errorf("item %d: processed %v, verdict %v; want answered after the outage", d.Item, d.Processed, d.Answer.v)
		}
		got[d.Item] = true
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v, want nil: a follower does not stop on an outage", err)
	}
	if len(got) != n {
		t.Fatalf("%d items came out, want %d", len(got), n)
	}
	paused, failed, resumed := ev.kinds()
	if paused != 1 || resumed != 1 || failed < 2 {
		t.Fatalf("events: %d paused, %d probes failed, %d resumed; want 1, >= 2, 1", paused, failed, resumed)
	}
}

// A single transient failure among answers is the call's own: passed on as
// such (after the next answer), not called again.
func TestProbeModeKeepsACallsOwnFailure(t *testing.T) {
	t.Parallel()
	ev := &events{}
	s := &script{of: func(i int) Verdict {
		if i == 3 {
			return Transient
		}
		return Answered
	}}
	cfg := Config{Concurrency: 1, MaxTransientStreak: 5, Probe: func(context.Context) error { return nil }, OnOutage: ev.add}
	out := make(chan Done[int, answer], 100)
	if err := Run(t.Context(), cfg, s.call, feed(10), out); err != nil {
		t.Fatal(err)
	}
	transient := 0
	for d := range out {
		if !d.Processed {
			t.Errorf("item %d unprocessed", d.Item)
		}
		if d.Answer.v == Transient {
			transient++
		}
	}
	if transient != 1 || s.calls.Load() != 10 {
		t.Fatalf("%d transient answers out of %d calls; want 1 of 10", transient, s.calls.Load())
	}
	if p, _, _ := ev.kinds(); p != 0 {
		t.Fatal("one failure paused the pool")
	}
}

// A probe answered with a fatal error (credentials refused) stops the run;
// an interrupt during a pause leaves everything unprocessed and is no error.
func TestProbeModeStops(t *testing.T) {
	t.Parallel()
	t.Run("fatal probe", func(t *testing.T) {
		t.Parallel()
		a := &api{}
		a.down.Store(true)
		a.fatal.Store(true)
		out := make(chan Done[int, answer], 1000)
		err := Run(t.Context(), followConfig(a, &events{}), a.call, feed(50), out)
		var fe *FatalError
		if !errors.As(err, &fe) {
			t.Fatalf("Run: %v, want the probe's fatal error", err)
		}
		if p, _ := collect(out); p != 0 {
			t.Fatalf("%d items processed during an outage that ended fatally", p)
		}
	})
	t.Run("halt while paused", func(t *testing.T) {
		t.Parallel()
		a := &api{}
		a.down.Store(true)
		ev := &events{}
		halt, interrupt := context.WithCancel(t.Context())
		cfg := followConfig(a, ev)
		cfg.Halt = halt
		in := make(chan int, 20)
		for i := range 20 {
			in <- i
		}
		out := make(chan Done[int, answer], 1000)
		errc := make(chan error, 1)
		go func() { errc <- Run(t.Context(), cfg, a.call, in, out) }()
		waitUntil(t, func() bool { p, _, _ := ev.kinds(); return p == 1 })
		interrupt()
		close(in)
		if err := <-errc; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if p, u := collect(out); p != 0 || u != 20 {
			t.Fatalf("processed %d, unprocessed %d; want 0 and 20", p, u)
		}
	})
}

func waitUntil(t *testing.T, cond func() bool) {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error("condition not reached in 10s")
			return
		}
		time.Sleep(time.Millisecond)
	}
}
