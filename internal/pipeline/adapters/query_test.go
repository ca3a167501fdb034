package adapters

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/pool"
	"github.com/cmsetl/cms-etl/extract/pool/ratecontrol"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/transform"
)

// TestAnswerOf: every class of a call maps to one outcome and one verdict;
// the HTTP-level permanent failures and the rate controller's stop carry
// their errors to the pool.
func TestAnswerOf(t *testing.T) {
	t.Parallel()
	key := extract.Key{CCID: 1, VDN: 2, CallID: "1700000000-1"}
	se := &cms.StatusError{Status: 404, URL: "https://10.0.0.5:28443" + cms.QueryPath}
	stopped := fmt.Errorf("rate limiter: %w: database gone", ratecontrol.ErrStopped)
	tests := []struct {
		name    string
		res     cms.Result[cms.Record]
		outcome outcome.Outcome
		retry   bool
		verdict pool.Verdict
		errIs   error
	}{
		{"ok", cms.Result[cms.Record]{Class: cms.ClassOK}, outcome.Loaded, false, pool.Answered, nil},
		{"no data", cms.Result[cms.Record]{Class: cms.ClassNoData}, outcome.NoData, false, pool.Answered, nil},
		{"business code", cms.Result[cms.Record]{Class: cms.ClassPermanent, ResultCode: "0100002", Message: "result code 0100002"}, outcome.Failed, false, pool.Answered, nil},
		{"HTTP 404", cms.Result[cms.Record]{Class: cms.ClassPermanent, HTTPStatus: 404, Err: se}, outcome.Failed, false, pool.HTTPError, se},
		{"transient", cms.Result[cms.Record]{Class: cms.ClassTransient, HTTPStatus: 503, Message: "HTTP 503"}, outcome.Failed, true, pool.Transient, nil},
		{"limiter stopped", cms.Result[cms.Record]{Class: cms.ClassTransient, Err: stopped, Message: stopped.Error()}, outcome.Failed, true, pool.Fatal, ratecontrol.ErrStopped},
		{"rejected", cms.Result[cms.Record]{Class: cms.ClassRejected, Message: "callId: bad"}, outcome.Rejected, false, pool.Rejected, nil},
		{"fatal", cms.Result[cms.Record]{Class: cms.ClassFatal, HTTPStatus: 401, Message: "signature rejected"}, "", false, pool.Fatal, nil},
	}
	for _, tt := range tests {
		tt.res.Key = key
		a, v, err := answerOf[cms.Record, transform.Row](tt.res)
		if a.Outcome != tt.outcome || a.Retry != tt.retry || v != tt.verdict {
			t.Errorf("%s: outcome %q retry %v verdict %v; want %q %v %v", tt.name, a.Outcome, a.Retry, v, tt.outcome, tt.retry, tt.verdict)
		}
		if tt.errIs != nil && !errors.Is(err, tt.errIs) {
			t.Errorf("%s: err %v, want it to wrap %v", tt.name, err, tt.errIs)
		}
		if tt.name == "fatal" {
			var fa *FatalAnswer
			if !errors.As(err, &fa) || err.Error() != "fatal response from CC-CMS for 1/2/1700000000-1: HTTP 401: signature rejected" {
				t.Errorf("fatal: err %v", err)
			}
		}
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
