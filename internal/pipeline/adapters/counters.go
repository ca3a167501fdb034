package adapters

import (
	"sync/atomic"

	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/pool/ratecontrol"
)

// Counters observe every attempt of the CMS client (install Observe as
// cms.Config.OnAttempt) for the summary and the metrics, and tell the rate
// controller what each attempt says about the API's load.
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
