package cms

import (
	"encoding/json"
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
	// 0100999, oversized or malformed bodies); final only after the last attempt.
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

// Result is the outcome of one call to querybasiccallinfo, retries included.
type Result struct {
	Key        extract.Key
	Class      Class
	Record     *Record         // set for ClassOK
	Raw        json.RawMessage // the result object exactly as received (ClassOK)
	ResultCode string          // business code: resultCode, else legacy result
	Message    string          // resultDesc text on failure, or a description of the error
	HTTPStatus int             // status of the last attempt; 0 when no response
	Attempts   int             // attempts made (0 for ClassRejected)
	FetchedAt  time.Time       // when the last response arrived
	Latency    time.Duration   // duration of the last attempt
	Err        error           // the underlying error for transient and fatal results
}

// Attempt describes one HTTP attempt; the client reports each to its
// Config.OnAttempt hook so the pool can count retries and react to throttling.
type Attempt struct {
	Key        extract.Key
	Number     int // 1-based
	HTTPStatus int // 0 when no response
	Class      Class
	Latency    time.Duration
	RetryAfter time.Duration // from a Retry-After header, 0 when absent
}
