package cms

import (
	"time"

	"github.com/cmsetl/cms-etl/extract"
)

// Class is how one call ended. Every call ends in exactly one class.
type Class int

const (
	// ClassOK: success code and a non-empty result object (Result.Record set).
	ClassOK Class = iota
	// ClassNoData: success code but no, null or empty result object.
	ClassNoData
	// ClassPermanent: a failure that retrying cannot fix (e.g. 0100002, 0101002, 0101003).
	ClassPermanent
	// ClassTransient: retryable (transport errors, timeouts, 5xx, 429, 0100001,
	// 0100999, oversized or malformed bodies); final only after the last attempt
	// or when the retry budget refused another one.
	ClassTransient
	// ClassFatal: 401, 403 or TLS verification failure. The run must stop at
	// once: repeated bad signatures can get the caller's IP locked.
	ClassFatal
	// ClassRejected: the key failed validation and was never sent.
	ClassRejected
)

var classNames = [...]string{"ok", "no_data", "permanent", "transient", "fatal", "rejected"}

func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// Attempt describes one HTTP attempt; the client reports each to its
// Config.OnAttempt hook, after deciding whether to retry, so the pool can
// count requests and retries and adapt its rate.
type Attempt struct {
	Key        extract.Key
	Number     int // 1-based
	HTTPStatus int // 0 when no response
	Class      Class
	Latency    time.Duration
	RetryAfter time.Duration // from a Retry-After header (clamped), 0 when absent
	// Throttle: the server pushed back on load (HTTP 429, or 503 with a
	// Retry-After). Other 5xx and a 503 without Retry-After are merely
	// transient: they say nothing about the rate.
	Throttle bool
	// Sent: the request was written to a connection (or answered). An
	// attempt cut off while dialing or waiting for a connection was not.
	Sent bool
	// Canceled: the caller's context ended the attempt; its outcome says
	// nothing about the API.
	Canceled bool
	// Retried: another attempt follows (after the backoff or Retry-After).
	Retried bool
	// BudgetExhausted: the attempt was transient and attempts remained, but
	// the retry budget refused another one; the call ends transient.
	BudgetExhausted bool
}

// StatusError is an HTTP-level permanent failure: the endpoint answered with
// a status outside 2xx that is neither a throttle, a 5xx nor an
// authentication refusal (404, 405, 400, 3xx...). A streak of them means the
// URL is wrong, not the calls.
type StatusError struct {
	Status int
	URL    string // scheme://host:port/path, no credentials
}

func (e *StatusError) Error() string { return statusText(e.Status) + " from " + e.URL }
