package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/pool/ratecontrol"
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

// recorder is an Observer that keeps what it heard.
type recorder struct {
	mu  sync.Mutex
	obs []ratecontrol.Observation
}

func (r *recorder) Observe(o ratecontrol.Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs = append(r.obs, o)
}

func TestCountersClassifyAndCountSentRequests(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	c := NewCounters(rec)
	attempts := []struct {
		a    cms.Attempt
		want ratecontrol.Signal
	}{
		{cms.Attempt{Number: 1, HTTPStatus: 200, Class: cms.ClassOK, Sent: true, Latency: time.Millisecond}, ratecontrol.OK},
		{cms.Attempt{Number: 1, HTTPStatus: 200, Class: cms.ClassPermanent, Sent: true}, ratecontrol.OK},
		{cms.Attempt{Number: 1, HTTPStatus: 429, Class: cms.ClassTransient, Throttle: true, RetryAfter: time.Second, Sent: true, Retried: true}, ratecontrol.Throttle},
		{cms.Attempt{Number: 2, HTTPStatus: 503, Class: cms.ClassTransient, Throttle: true, RetryAfter: time.Second, Sent: true, Retried: true}, ratecontrol.Throttle},
		{cms.Attempt{Number: 3, HTTPStatus: 503, Class: cms.ClassTransient, Sent: true, Retried: true}, ratecontrol.Transient},
		{cms.Attempt{Number: 1, HTTPStatus: 502, Class: cms.ClassTransient, Sent: true, BudgetExhausted: true}, ratecontrol.Transient},
		{cms.Attempt{Number: 1, Class: cms.ClassTransient, Retried: true}, ratecontrol.Transient}, // connection refused: not sent
	}
	for _, tc := range attempts {
		c.Observe(tc.a)
	}
	// Cut off by the run's own cancellation while connecting: neither a
	// request nor a signal.
	c.Observe(cms.Attempt{Number: 1, Class: cms.ClassTransient, Canceled: true})
	if c.Attempts.Load() != 6 || c.Retries.Load() != 2 || c.TransientRetries.Load() != 2 ||
		c.Throttled.Load() != 1 || c.Unavail.Load() != 2 {
		t.Fatalf("requests %d retries %d transient retries %d 429 %d 503 %d", c.Attempts.Load(), c.Retries.Load(),
			c.TransientRetries.Load(), c.Throttled.Load(), c.Unavail.Load())
	}
	if len(rec.obs) != len(attempts) {
		t.Fatalf("%d observations, want %d (the cancelled attempt says nothing about the API)", len(rec.obs), len(attempts))
	}
	for i, tc := range attempts {
		if got := rec.obs[i]; got.Signal != tc.want || got.RetryAfter != tc.a.RetryAfter {
			t.Errorf("attempt %+v heard as %+v, want signal %v", tc.a, got, tc.want)
		}
	}
}

// answering answers each key with the result its sequence number picks.
type answering struct {
	answer func(i int, key extract.Key) cms.Result
	calls  atomic.Int64
}

func (a *answering) Query(_ context.Context, key extract.Key) cms.Result {
	a.calls.Add(1)
	var i int
	fmt.Sscanf(key.CallID, "1700000000-%d", &i)
	return a.answer(i, key)
}

const queryURL = "https://10.0.0.5:28443" + cms.QueryPath

func httpError(status int) func(int, extract.Key) cms.Result {
	return func(_ int, key extract.Key) cms.Result {
		return cms.Result{Key: key, Class: cms.ClassPermanent, HTTPStatus: status, Err: &cms.StatusError{Status: status, URL: queryURL}}
	}
}

func TestHTTPErrorStreak(t *testing.T) {
	t.Parallel()
	ok := func(_ int, key extract.Key) cms.Result { return cms.Result{Key: key, Class: cms.ClassOK} }
	tests := []struct {
		name          string
		answer        func(int, extract.Key) cms.Result
		wantStop      bool
		wantFailed    int // processed items with a permanent class
		wantProcessed int
	}{
		{"every call 404", httpError(404), true, 0, 0},
		{"every call 302", httpError(302), true, 0, 0},
		{"business code on every call", func(_ int, key extract.Key) cms.Result {
			return cms.Result{Key: key, Class: cms.ClassPermanent, HTTPStatus: 200, ResultCode: "0100002"}
		}, false, 300, 300},
		{"sporadic 400", func(i int, key extract.Key) cms.Result {
			if i%10 == 3 {
				return httpError(400)(i, key)
			}
			return ok(i, key)
		}, false, 30, 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n, streak, conc = 300, 20, 4
			q := &answering{answer: tc.answer}
			out := make(chan Done[int], 8)
			errc := make(chan error, 1)
			go func() {
				errc <- Run(t.Context(), Config{Concurrency: conc, MaxHTTPErrorStreak: streak}, q, feed(n), keyOf, out)
			}()
			var processed, failed, unprocessed int
			for d := range out {
				switch {
				case !d.Processed:
					unprocessed++
				case d.Result.Class == cms.ClassPermanent:
					processed++
					failed++
				default:
					processed++
				}
			}
			err := <-errc
			if processed+unprocessed != n {
				t.Fatalf("%d processed + %d unprocessed, want %d", processed, unprocessed, n)
			}
			if !tc.wantStop {
				if err != nil || processed != tc.wantProcessed || failed != tc.wantFailed {
					t.Fatalf("err %v, processed %d (failed %d); want no stop, %d processed, %d failed", err, processed, failed, tc.wantProcessed, tc.wantFailed)
				}
				return
			}
			if !errors.Is(err, ErrHTTPErrors) {
				t.Fatalf("Run error = %v, want ErrHTTPErrors", err)
			}
			var se *cms.StatusError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), queryURL) || !strings.Contains(err.Error(), fmt.Sprint(se.Status)) {
				t.Errorf("error %q should name the status and the URL", err)
			}
			// The URL is wrong, not the calls: nothing is marked failed.
			if processed != 0 {
				t.Errorf("%d items processed; the streak's calls and those after it belong to the next run", processed)
			}
			if got := q.calls.Load(); got > streak+conc {
				t.Errorf("%d calls; want the pool to stop after a streak of %d", got, streak)
			}
		})
	}
}

func TestHTTPErrorStreakDisabled(t *testing.T) {
	t.Parallel()
	q := &answering{answer: httpError(404)}
	out := make(chan Done[int], 8)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(t.Context(), Config{Concurrency: 2, MaxHTTPErrorStreak: -1}, q, feed(100), keyOf, out)
	}()
	p, u := collect(out)
	if err := <-errc; err != nil || p != 100 || u != 0 {
		t.Fatalf("err %v, %d processed, %d unprocessed; want every 404 processed as failed", err, p, u)
	}
}

// The limiter can end the run (a rate group that lost its database): the
// item is left for the next run and the pool stops.
func TestLimiterStopEndsTheRun(t *testing.T) {
	t.Parallel()
	stopErr := fmt.Errorf("rate limiter: %w: database gone", ratecontrol.ErrStopped)
	q := &answering{answer: func(i int, key extract.Key) cms.Result {
		if i == 5 {
			return cms.Result{Key: key, Class: cms.ClassTransient, Err: stopErr}
		}
		return cms.Result{Key: key, Class: cms.ClassOK}
	}}
	out := make(chan Done[int], 8)
	errc := make(chan error, 1)
	go func() { errc <- Run(t.Context(), Config{Concurrency: 1}, q, feed(20), keyOf, out) }()
	p, u := collect(out)
	if err := <-errc; !errors.Is(err, ratecontrol.ErrStopped) {
		t.Fatalf("Run = %v, want the limiter's stop", err)
	}
	if p != 5 || u != 15 {
		t.Fatalf("%d processed, %d unprocessed; want 5 and 15", p, u)
	}
}
