package pool

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
)

// scripted answers each key with the class its callId's sequence number picks.
type scripted struct {
	classOf     func(i int) cms.Class
	calls       atomic.Int64
	block       bool
	blockOthers bool // every item but item 0 waits for cancellation
}

func (s *scripted) Query(ctx context.Context, key extract.Key) cms.Result {
	s.calls.Add(1)
	var i int
	fmt.Sscanf(key.CallID, "1700000000-%d", &i)
	if s.block || (s.blockOthers && i != 0) {
		<-ctx.Done()
		return cms.Result{Key: key, Class: cms.ClassTransient, Err: ctx.Err()}
	}
	return cms.Result{Key: key, Class: s.classOf(i)}
}

func feed(n int) <-chan int {
	ch := make(chan int, n)
	for i := range n {
		ch <- i
	}
	close(ch)
	return ch
}

func keyOf(i int) extract.Key {
	return extract.Key{CCID: 1, VDN: 1, CallID: fmt.Sprintf("1700000000-%d", i)}
}

func collect[T any](out <-chan Done[T]) (processed, unprocessed int) {
	for d := range out {
		if d.Processed {
			processed++
		} else {
			unprocessed++
		}
	}
	return
}

func TestRunAccountsForEveryItem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		classOf func(i int) cms.Class
		streak  int
		wantErr error
		wantAll bool
	}{
		{"all ok", func(int) cms.Class { return cms.ClassOK }, 0, nil, true},
		{"mixed", func(i int) cms.Class { return cms.Class(i % 4) }, 0, nil, true},
		{"fatal stops", func(i int) cms.Class { return cms.ClassFatal }, 0, &FatalError{}, false},
		{"api down", func(int) cms.Class { return cms.ClassTransient }, 20, ErrAPIDown, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 500
			_, fatal := tc.wantErr.(*FatalError)
			q := &scripted{classOf: tc.classOf, blockOthers: fatal}
			out := make(chan Done[int], 4)
			var stopped atomic.Bool
			errc := make(chan error, 1)
			go func() {
				errc <- Run(t.Context(), Config{Concurrency: 4, MaxTransientStreak: tc.streak, Stop: func(error) { stopped.Store(true) }}, q, feed(n), keyOf, out)
			}()
			p, u := collect(out)
			err := <-errc
			if p+u != n {
				t.Fatalf("got %d processed + %d unprocessed, want %d items", p, u, n)
			}
			switch want := tc.wantErr.(type) {
			case nil:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if u != 0 {
					t.Errorf("%d items unprocessed", u)
				}
			case *FatalError:
				var fe *FatalError
				if !errors.As(err, &fe) {
					t.Fatalf("Run error = %v, want FatalError", err)
				}
				if !stopped.Load() {
					t.Error("Stop callback not called")
				}
				// Item 0 is fatal and the other workers' requests are in flight
				// until the pool cancels them: nothing more may be sent.
				if got := q.calls.Load(); got > 4 {
					t.Errorf("%d queries; want at most the 4 in flight when the fatal answer came", got)
				}
				if p != 1 {
					t.Errorf("%d items processed; want only the fatal one (in-flight ones are left for the next run)", p)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("Run error = %v, want %v", err, want)
				}
				if q.calls.Load() > int64(tc.streak)+4 {
					t.Errorf("%d queries; want the pool to stop after a streak of %d", q.calls.Load(), tc.streak)
				}
			}
		})
	}
}

func TestRunCancelLeavesInFlightUnprocessed(t *testing.T) {
	t.Parallel()
	q := &scripted{block: true}
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan Done[int], 100)
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, Config{Concurrency: 3}, q, feed(10), keyOf, out) }()
	for q.calls.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	p, u := collect(out)
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if p != 0 || u != 10 {
		t.Fatalf("processed %d, unprocessed %d; want 0 and 10", p, u)
	}
}

func TestLimiterPausesAndRecovers(t *testing.T) {
	t.Parallel()
	var now time.Time = time.Unix(1700000000, 0)
	lim := NewAdaptiveLimiter(100, 1)
	lim.now = func() time.Time { return now }
	lim.lastChange = now

	lim.Throttled(2 * time.Second)
	s := lim.Stats()
	if s.Current != 50 || s.Cuts != 1 || s.Pauses != 1 {
		t.Fatalf("after one 429: %+v, want current 50, 1 cut, 1 pause", s)
	}
	// More 429s from requests already in flight inside the same window: one signal.
	lim.Throttled(2 * time.Second)
	if s := lim.Stats(); s.Current != 50 {
		t.Fatalf("second 429 in the same window cut again: %+v", s)
	}
	// Wait must honour the pause: with the clock frozen inside it, a short ctx expires.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if err := lim.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait during pause = %v, want deadline exceeded", err)
	}
	// Later throttling keeps halving down to the floor.
	for range 10 {
		now = now.Add(3 * time.Second)
		lim.Throttled(time.Second)
	}
	if s := lim.Stats(); s.Current != 100.0/16 {
		t.Fatalf("current after many cuts = %v, want floor %v", s.Current, 100.0/16)
	}
	// Recovery: additive steps every recover interval once the pause is over.
	for range 40 {
		now = now.Add(3 * time.Second)
		lim.maybeRecover()
	}
	if s := lim.Stats(); s.Current != 100 {
		t.Fatalf("current after recovery = %v, want 100", s.Current)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Observe(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.95, 950 * time.Millisecond}} {
		got := h.Quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.05 {
			t.Errorf("q%.2f = %v, want within 5%% above %v", tc.q, got, tc.want)
		}
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("empty histogram quantile not 0")
	}
}

func TestCountersTellLimiter(t *testing.T) {
	t.Parallel()
	lim := NewAdaptiveLimiter(10, 1)
	c := NewCounters(lim)
	c.Observe(cms.Attempt{Number: 1, HTTPStatus: 200, Latency: time.Millisecond})
	c.Observe(cms.Attempt{Number: 2, HTTPStatus: 429, RetryAfter: time.Second})
	c.Observe(cms.Attempt{Number: 3, HTTPStatus: 503})
	if c.Attempts.Load() != 3 || c.Retries.Load() != 2 || c.Throttled.Load() != 1 || c.Unavail.Load() != 1 {
		t.Fatalf("counters: attempts %d retries %d 429 %d 503 %d", c.Attempts.Load(), c.Retries.Load(), c.Throttled.Load(), c.Unavail.Load())
	}
	if s := lim.Stats(); s.Pauses == 0 || s.Cuts == 0 {
		t.Fatalf("limiter not told about throttling: %+v", s)
	}
}
