package load

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/internal/outcome"
)

// Failure outcomes: the values of Failure.Outcome (and of
// cms.call_failure.outcome and the rejects CSV's outcome column).
const (
	OutcomeFailed   = string(outcome.Failed)   // sent, but no usable answer (permanent error, retries exhausted)
	OutcomeRejected = string(outcome.Rejected) // never sent: the input or key was invalid
)

// Failure is one input row a run did not load: the one record both failure
// logs write, DIR/_rejects/<run>.csv (package rejects) and cms.call_failure
// (package postgres). Writers store Clean's copy, never the fields as given.
type Failure struct {
	Line int64 // 1-based input line; 0 for inputs without lines (the queue)
	// Key is the parsed key; zero (invalid) when the row's key did not parse.
	Key extract.Key
	// Raw holds ccId, vdn and callId as read, "" where there was no input
	// text (a missing column, a row that failed CSV parsing, the queue).
	Raw        [3]string
	Outcome    string // OutcomeFailed or OutcomeRejected
	Reason     string
	ResultCode string // the API's last resultCode, "" if none
	HTTPStatus int    // last HTTP status, 0 when no response came
	Attempts   int    // requests made for the row
}

// Validate reports a Failure no log may store.
func (f Failure) Validate() error {
	if f.Outcome != OutcomeFailed && f.Outcome != OutcomeRejected {
		return fmt.Errorf("failure record: outcome %q is not %q or %q", f.Outcome, OutcomeFailed, OutcomeRejected)
	}
	return nil
}

// MaxFailureText bounds each text field of a cleaned Failure, in bytes
// before the truncation marker. Input lines may be up to 64 KiB; a reject
// record needs to show what the row was, not all of it.
const MaxFailureText = 1024

// Clean returns f with every text field made storable by CleanText: raw
// cells, reason and result code come from input files and remote servers and
// may hold anything.
func (f Failure) Clean() Failure {
	for i := range f.Raw {
		f.Raw[i] = CleanText(f.Raw[i])
	}
	f.Key.CallID = CleanText(f.Key.CallID)
	f.Reason = CleanText(f.Reason)
	f.ResultCode = CleanText(f.ResultCode)
	return f
}

// CleanText makes s storable as PostgreSQL text and readable in any CSV
// tool: each run of invalid UTF-8 becomes U+FFFD, NUL characters (which
// PostgreSQL cannot store) are removed, and a text longer than MaxFailureText
// bytes is cut at a character boundary and marked with its full length. Text
// that needs none of this is returned as is, without allocating.
func CleanText(s string) string {
	if len(s) <= MaxFailureText && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	full := len(s)
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= MaxFailureText {
		return s
	}
	cut := MaxFailureText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "...[truncated, " + strconv.Itoa(full) + " bytes]"
}
