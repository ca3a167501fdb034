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
)

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

// UnparsableSuffix marks an Unknown that reports text a column could not
// parse (a local date-time); Code is 0, the raw JSON keeps the text.
const UnparsableSuffix = "_unparsable"

// Problem reports whether u is a value written as NULL (out of range or
// unparsable) rather than an unknown code kept with the label "unknown".
func (u Unknown) Problem() bool {
	return u.OutOfRange() || strings.HasSuffix(u.Field, UnparsableSuffix)
}

// maxMillis is 9999-12-31T23:59:59.999Z. Later instants are not data: they
// would also break RFC 3339 formatting (4-digit years) in logs and JSON.
const maxMillis = 253402300799999

// converter computes a row's derived values (rows_gen.go calls it, one
// method per conversion of internal/recordspec). The rules:
//   - epochMillis: epoch ms in UTC; 0 or negative is absent (NULL), after
//     year 9999 out of range (NULL, reported);
//   - callIDTime: the call's start from the callId prefix (see CallStartedAt);
//   - int32Col: NULL when the value does not fit int32, and reported;
//   - coded: int32Col plus a label from the code table; a code missing from
//     its table is labelled UnknownLabel and reported; a NULL code has a
//     NULL label;
//   - text columns (text) are trimmed of surrounding white space and
//     otherwise kept exactly (no number normalisation, no country codes);
//     empty text is NULL.
//
// Values live in the slices, whose capacity the generated store sizes to
// the row, so the pointers handed out stay valid and a row costs one
// allocation for all of them.
type converter struct {
	i32     []int32
	labels  []string
	times   []time.Time
	unknown []Unknown
}

func (c *converter) report(field string, v int64) {
	c.unknown = append(c.unknown, Unknown{Field: field, Code: v})
}

// reported returns what the conversions reported, nil when nothing.
func (c *converter) reported() []Unknown {
	if len(c.unknown) == 0 {
		return nil
	}
	return c.unknown
}

func (c *converter) time(t time.Time) *time.Time {
	c.times = append(c.times, t)
	return &c.times[len(c.times)-1]
}

// callIDTime is the call's start read from its callId, or nil.
func (c *converter) callIDTime(callID string) *time.Time {
	t, ok := callStartedAt(callID)
	if !ok {
		return nil
	}
	return c.time(t)
}

// epochMillis converts epoch milliseconds of column col.
func (c *converter) epochMillis(col string, ms *int64) *time.Time {
	if ms == nil || *ms <= 0 {
		return nil
	}
	if *ms > maxMillis {
		c.report(col+OutOfRangeSuffix, *ms)
		return nil
	}
	return c.time(time.UnixMilli(*ms).UTC())
}

// localDateTime is how CC-CMS writes local date-times (CDR beginTime/endTime).
const localDateTime = "2006-01-02 15:04:05"

// localTime parses a local date-time of column col in zone (nil: UTC).
func (c *converter) localTime(col string, v *string, zone *time.Location) *time.Time {
	if v == nil {
		return nil
	}
	if zone == nil {
		zone = time.UTC
	}
	t, err := time.ParseInLocation(localDateTime, strings.TrimSpace(*v), zone)
	if err != nil {
		c.report(col+UnparsableSuffix, 0)
		return nil
	}
	return c.time(t.UTC())
}

// int32Col narrows v; NULL (and reported) when it does not fit.
func (c *converter) int32Col(col string, v *int64) *int32 {
	if v == nil {
		return nil
	}
	if *v < math.MinInt32 || *v > math.MaxInt32 {
		c.report(col+OutOfRangeSuffix, *v)
		return nil
	}
	c.i32 = append(c.i32, int32(*v))
	return &c.i32[len(c.i32)-1]
}

// coded is int32Col plus the label from a code table.
func (c *converter) coded(col string, v *int64, label func(int32) (string, bool)) (*int32, *string) {
	code := c.int32Col(col, v)
	if code == nil {
		return nil, nil
	}
	l, known := label(*code)
	if !known {
		c.report(col, int64(*code))
	}
	c.labels = append(c.labels, l)
	return code, &c.labels[len(c.labels)-1]
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

func callStartedAt(callID string) (time.Time, bool) { return extract.CallStartedAt(callID) }

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
