package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The pool is driven with scripted calls: what matters here is the
// verdicts and the stops, not what the calls ask (the CMS client and the
// pipeline's queries are tested against the simulator).

// answer is a scripted call's answer: its item and verdict.
type answer struct {
	item int
	v    Verdict
}

// script answers item i with verdict of(i) and an error naming it.
type script struct {
	of          func(i int) Verdict
	calls       atomic.Int64
	block       bool
	blockOthers bool // every item but item 0 waits for cancellation
}

func (s *script) call(ctx context.Context, i int) (answer, Verdict, error) {
	s.calls.Add(1)
	if s.block || (s.blockOthers && i != 0) {
		<-ctx.Done()
		return answer{i, Transient}, Transient, ctx.Err()
	}
	v := s.of(i)
	var err error
	switch v {
	case Transient:
		err = fmt.Errorf("item %d: HTTP 503", i)
	case HTTPError:
		err = fmt.Errorf("HTTP 404 Not Found from https://10.0.0.5:28443/rest/x (item %d)", i)
	case Fatal:
		err = fmt.Errorf("item %d: HTTP 401", i)
	}
	return answer{i, v}, v, err
}

func feed(n int) <-chan int {
	ch := make(chan int, n)
	for i := range n {
		ch <- i
	}
	close(ch)
	return ch
}

func collect(out <-chan Done[int, answer]) (processed, unprocessed int) {
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
		of      func(i int) Verdict
		streak  int
		wantErr error
	}{
		{"all answered", func(int) Verdict { return Answered }, 0, nil},
		{"mixed", func(i int) Verdict { return []Verdict{Answered, Rejected, Answered, Transient}[i%4] }, 0, nil},
		{"fatal stops", func(i int) Verdict { return Fatal }, 0, &FatalError{}},
		{"api down", func(int) Verdict { return Transient }, 20, ErrAPIDown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 500
			_, fatal := tc.wantErr.(*FatalError)
			s := &script{of: tc.of, blockOthers: fatal}
			out := make(chan Done[int, answer], 4)
			var stopped atomic.Bool
			errc := make(chan error, 1)
			go func() {
				errc <- Run(t.Context(), Config{Concurrency: 4, MaxTransientStreak: tc.streak, Stop: func(error) { stopped.Store(true) }}, s.call, feed(n), out)
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
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), "HTTP 401") {
					t.Fatalf("Run error = %v, want a FatalError carrying the call's error", err)
				}
				if !stopped.Load() {
					t.Error("Stop callback not called")
				}
				// Item 0 is fatal and the other workers' calls are in flight
				// until the pool cancels them: nothing more may start.
				if got := s.calls.Load(); got > 4 {
					t.Errorf("%d calls; want at most the 4 in flight when the fatal answer came", got)
				}
				if p != 0 {
					t.Errorf("%d items processed; want none (the fatal one and those in flight are left for the next run)", p)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("Run error = %v, want %v", err, want)
				}
				if s.calls.Load() > int64(tc.streak)+4 {
					t.Errorf("%d calls; want the pool to stop after a streak of %d", s.calls.Load(), tc.streak)
				}
			}
		})
	}
}

func TestRunCancelLeavesInFlightUnprocessed(t *testing.T) {
	t.Parallel()
	s := &script{block: true}
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan Done[int, answer], 100)
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, Config{Concurrency: 3}, s.call, feed(10), out) }()
	for s.calls.Load() < 3 {
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

func TestHTTPErrorStreak(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		of            func(i int) Verdict
		wantStop      bool
		wantHTTPError int // processed items with an HTTP error
		wantProcessed int
	}{
		{"every call 404", func(int) Verdict { return HTTPError }, true, 0, 0},
		{"business code on every call", func(int) Verdict { return Answered }, false, 0, 300},
		{"sporadic 400", func(i int) Verdict {
			if i%10 == 3 {
				return HTTPError
			}
			return Answered
		}, false, 30, 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n, streak, conc = 300, 20, 4
			s := &script{of: tc.of}
			out := make(chan Done[int, answer], 8)
			errc := make(chan error, 1)
			go func() {
				errc <- Run(t.Context(), Config{Concurrency: conc, MaxHTTPErrorStreak: streak}, s.call, feed(n), out)
			}()
			var processed, httpErrors, unprocessed int
			for d := range out {
				switch {
				case !d.Processed:
					unprocessed++
				case d.Answer.v == HTTPError:
					processed++
					httpErrors++
				default:
					processed++
				}
			}
			err := <-errc
			if processed+unprocessed != n {
				t.Fatalf("%d processed + %d unprocessed, want %d", processed, unprocessed, n)
			}
			if !tc.wantStop {
				if err != nil || processed != tc.wantProcessed || httpErrors != tc.wantHTTPError {
					t.Fatalf("err %v, processed %d (HTTP errors %d); want no stop, %d processed, %d HTTP errors", err, processed, httpErrors, tc.wantProcessed, tc.wantHTTPError)
				}
				return
			}
			if !errors.Is(err, ErrHTTPErrors) || !strings.Contains(err.Error(), "HTTP 404 Not Found from https://10.0.0.5:28443/rest/x") {
				t.Fatalf("Run error = %v, want ErrHTTPErrors naming the status and the URL", err)
			}
			// The URL is wrong, not the calls: nothing is processed.
			if processed != 0 {
				t.Errorf("%d items processed; the streak's calls and those after it belong to the next run", processed)
			}
			if got := s.calls.Load(); got > streak+conc {
				t.Errorf("%d calls; want the pool to stop after a streak of %d", got, streak)
			}
		})
	}
}

func TestHTTPErrorStreakDisabled(t *testing.T) {
	t.Parallel()
	s := &script{of: func(int) Verdict { return HTTPError }}
	out := make(chan Done[int, answer], 8)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(t.Context(), Config{Concurrency: 2, MaxHTTPErrorStreak: -1}, s.call, feed(100), out)
	}()
	p, u := collect(out)
	if err := <-errc; err != nil || p != 100 || u != 0 {
		t.Fatalf("err %v, %d processed, %d unprocessed; want every 404 processed", err, p, u)
	}
}
