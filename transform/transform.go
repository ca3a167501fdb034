// Package transform turns a decoded querybasiccallinfo result into an output
// Row. It is pure: no I/O, no clock, no randomness, so the same Input always
// gives the same Row.
package transform

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
)

// Input is everything one row is made of.
type Input struct {
	Key       extract.Key     // a validated key: CCID and VDN fit int32
	Record    *cms.Record     // the decoded result object; nil is treated as empty
	Raw       json.RawMessage // the result object as received, stored as is
	FetchedAt time.Time       // when the response arrived
	RunID     string          // the run that fetched it
}

// OutOfRangeSuffix marks an Unknown that reports a value the column cannot
// hold (see Unknown).
const OutOfRangeSuffix = "_out_of_range"

// Unknown reports a value the row could not represent faithfully, so the run
// summary can count it per field and value:
//
//   - a code missing from its table: Field is the column ("media_type"); the
//     column keeps the code and its label is UnknownLabel;
//   - a value out of its column's range: Field is the column plus
//     OutOfRangeSuffix ("priority_out_of_range"); the column is NULL. This
//     covers int32 columns and entered_at after year 9999 (Code is then the
//     epoch ms). Folding both into one list keeps ToRow's callers to a
//     single loop; OutOfRange tells them apart.
//
// Values the decoder could not interpret at all are not repeated here: they
// are in cms.Record.Problems.
type Unknown struct {
	Field string
	Code  int64
}

// OutOfRange reports whether u is an out-of-range value rather than an
// unknown code.
func (u Unknown) OutOfRange() bool { return strings.HasSuffix(u.Field, OutOfRangeSuffix) }

// maxMillis is 9999-12-31T23:59:59.999Z. Later instants are not data: they
// would also break RFC 3339 formatting (4-digit years) in logs and JSON.
const maxMillis = 253402300799999

// emptyRecord stands in for a nil Record; it is only read.
var emptyRecord cms.Record

// rowStore holds the values the Row points to, in one allocation.
type rowStore struct {
	i32       [9]int32
	labels    [4]string
	started   time.Time
	entered   time.Time
	unknownSl [1]Unknown
}

// ToRow maps one result to a row (issue rules):
//   - entered_at from time (epoch ms, UTC); 0 or negative is treated as
//     absent (NULL), after year 9999 as out of range;
//   - call_started_at from the callId prefix (see CallStartedAt);
//   - coded fields keep their integer and get a label from the code tables;
//     a code missing from its table is labelled UnknownLabel and reported; a
//     NULL code has a NULL label;
//   - int32 columns (priority, device_type, party_num, call_feature,
//     media_type, place, service_type, call_in_cause, enter_reason) are NULL
//     when the value does not fit, and reported;
//   - text columns (key_id, calling_num, called_num, call_skill,
//     orig_called_num, media_bill_type) are trimmed of surrounding white
//     space and otherwise kept exactly (no number normalisation, no country
//     codes); empty text is NULL;
//   - waitTime, totalTalkingTimes, logonTimes become wait_seconds,
//     talk_seconds, logon_seconds, and orgiCalledNum orig_called_num;
//   - fetched_at is FetchedAt in UTC, run_id is RunID, Raw is in.Raw.
//
// The Row shares Raw and the Record's int64 and string values instead of
// copying them; neither is modified.
func ToRow(in Input) (Row, []Unknown) {
	rec := in.Record
	if rec == nil {
		rec = &emptyRecord
	}
	c := converter{st: new(rowStore)}
	c.unknown = c.st.unknownSl[:0]
	row := Row{
		CCID:          int32(in.Key.CCID),
		VDN:           int32(in.Key.VDN),
		CallID:        in.Key.CallID,
		DSN:           rec.DSN,
		Handle:        rec.Handle,
		Server:        rec.Server,
		KeyID:         text(rec.KeyID),
		CallingNum:    text(rec.CallingNum),
		CalledNum:     text(rec.CalledNum),
		MID:           rec.MID,
		TrunkNo:       rec.TrunkNo,
		DeviceNo:      rec.DeviceNo,
		CallSkill:     text(rec.CallSkill),
		OrigCalledNum: text(rec.OrgiCalledNum),
		WaitSeconds:   rec.WaitTime,
		TalkSeconds:   rec.TotalTalkingTimes,
		LogonSeconds:  rec.LogonTimes,
		MediaBillType: text(rec.MediaBillType),
		FetchedAt:     in.FetchedAt.UTC(),
		RunID:         in.RunID,
		Raw:           withoutNUL(in.Raw),
	}
	if t, ok := callStartedAt(in.Key.CallID); ok {
		c.st.started = t
		row.CallStartedAt = &c.st.started
	}
	if ms := rec.Time; ms != nil && *ms > 0 {
		if *ms > maxMillis {
			c.report("entered_at"+OutOfRangeSuffix, *ms)
		} else {
			c.st.entered = time.UnixMilli(*ms).UTC()
			row.EnteredAt = &c.st.entered
		}
	}

	row.Priority = c.int32Col("priority", rec.Priority, 0)
	row.PartyNum = c.int32Col("party_num", rec.PartyNum, 1)
	row.Place = c.int32Col("place", rec.Place, 2)
	row.ServiceType = c.int32Col("service_type", rec.ServiceType, 3)
	row.CallInCause = c.int32Col("call_in_cause", rec.CallInCause, 4)
	row.DeviceType, row.DeviceTypeLabel = c.coded("device_type", rec.DeviceType, 5, 0, DeviceTypeLabel)
	row.CallFeature, row.CallFeatureLabel = c.coded("call_feature", rec.CallFeature, 6, 1, CallFeatureLabel)
	row.MediaType, row.MediaTypeLabel = c.coded("media_type", rec.MediaType, 7, 2, MediaTypeLabel)
	row.EnterReason, row.EnterReasonLabel = c.coded("enter_reason", rec.EnterReason, 8, 3, EnterReasonLabel)

	if len(c.unknown) == 0 {
		return row, nil
	}
	return row, c.unknown
}

type converter struct {
	st      *rowStore
	unknown []Unknown
}

func (c *converter) report(field string, v int64) {
	c.unknown = append(c.unknown, Unknown{Field: field, Code: v})
}

// int32Col narrows v into slot i of the store; NULL (and reported) when it
// does not fit.
func (c *converter) int32Col(col string, v *int64, i int) *int32 {
	if v == nil {
		return nil
	}
	if *v < math.MinInt32 || *v > math.MaxInt32 {
		c.report(col+OutOfRangeSuffix, *v)
		return nil
	}
	c.st.i32[i] = int32(*v)
	return &c.st.i32[i]
}

// coded is int32Col plus the label from a code table.
func (c *converter) coded(col string, v *int64, i, li int, label func(int32) (string, bool)) (*int32, *string) {
	code := c.int32Col(col, v, i)
	if code == nil {
		return nil, nil
	}
	l, known := label(*code)
	if !known {
		c.report(col, int64(*code))
	}
	c.st.labels[li] = l
	return code, &c.st.labels[li]
}

// text trims surrounding white space; empty text is NULL. The decoder
// already trims, so this allocates only for Records built by hand.
func text(s *string) *string {
	if s == nil {
		return nil
	}
	t := strings.TrimSpace(*s)
	if strings.IndexByte(t, 0) >= 0 {
		// PostgreSQL text cannot hold NUL; it is never meaningful in these fields.
		t = strings.TrimSpace(strings.ReplaceAll(t, "\x00", ""))
	}
	switch {
	case t == "":
		return nil
	case len(t) == len(*s):
		return s
	}
	return new(t) // only here: &t would move t to the heap on every call
}

// CallStartedAt reads the start time from a callId's prefix (the digits
// before the first '-', or the whole id without one): 13 digits are epoch
// milliseconds, 10 digits epoch seconds (both occur in Huawei's examples),
// in UTC. Other lengths, non-digits and a zero prefix give nil.
func CallStartedAt(callID string) *time.Time {
	t, ok := callStartedAt(callID)
	if !ok {
		return nil
	}
	return &t
}

func callStartedAt(callID string) (time.Time, bool) {
	prefix := callID
	if i := strings.IndexByte(callID, '-'); i >= 0 {
		prefix = callID[:i]
	}
	if len(prefix) != 13 && len(prefix) != 10 {
		return time.Time{}, false
	}
	var n int64 // at most 13 digits: cannot overflow
	for i := 0; i < len(prefix); i++ {
		d := prefix[i]
		if d < '0' || d > '9' {
			return time.Time{}, false
		}
		n = n*10 + int64(d-'0')
	}
	if n == 0 {
		return time.Time{}, false
	}
	if len(prefix) == 10 {
		return time.Unix(n, 0).UTC(), true
	}
	return time.UnixMilli(n).UTC(), true
}

// withoutNUL makes a JSON document storable as jsonb: PostgreSQL rejects
// NUL characters (\u0000), invalid UTF-8 and lone UTF-16 surrogate escapes
// (which Java servers can emit), and one such value would otherwise fail the
// whole batch it is committed with. NULs are removed; encoding/json replaces
// the others with U+FFFD. Clean documents are returned as they are.
func withoutNUL(raw json.RawMessage) json.RawMessage {
	if !bytes.Contains(raw, []byte(`\u0000`)) && !hasSurrogateEscape(raw) && utf8.Valid(raw) {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	out, err := json.Marshal(stripNUL(v))
	if err != nil {
		return raw
	}
	return out
}

// hasSurrogateEscape reports a \uD800-\uDFFF escape, paired or not: pairs
// are legal but rare, and re-encoding them is harmless.
func hasSurrogateEscape(raw []byte) bool {
	for i := bytes.Index(raw, []byte(`\u`)); i >= 0 && i+3 < len(raw); {
		if c := raw[i+2]; c == 'd' || c == 'D' {
			if h := raw[i+3]; h >= '8' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F' {
				return true
			}
		}
		next := bytes.Index(raw[i+2:], []byte(`\u`))
		if next < 0 {
			break
		}
		i += 2 + next
	}
	return false
}

func stripNUL(v any) any {
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, "\x00", "")
	case []any:
		for i := range x {
			x[i] = stripNUL(x[i])
		}
		return x
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[strings.ReplaceAll(k, "\x00", "")] = stripNUL(e)
		}
		return m
	}
	return v
}
