// Package extract turns inputs (CSV files, the Postgres queue) into call keys
// and, through the CC-CMS client and a rate-limited pool, into raw responses.
package extract

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"
	"time"
)

// Limits of the querybasiccallinfo request body (cms-api.md section 1).
const (
	MaxCCID      = 65535
	MaxVDN       = 5000
	MaxCallIDLen = 20
)

// Key identifies one call: the three fields of the querybasiccallinfo body.
type Key struct {
	CCID   int
	VDN    int
	CallID string
}

func (k Key) String() string {
	return strconv.Itoa(k.CCID) + "/" + strconv.Itoa(k.VDN) + "/" + k.CallID
}

// FieldError says which field of a key is invalid and why. Field uses the
// API's spelling (ccId, vdn, callId) so operators can match it to the input.
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	return e.Field + " " + QuoteValue(e.Value) + ": " + e.Reason
}

// MaxQuotedValue is how many characters of a value an error message quotes.
const MaxQuotedValue = 80

// QuoteValue quotes v for an error message. A value longer than
// MaxQuotedValue characters is cut there and its full length given, so one
// huge input cell cannot turn into a huge log line or reject reason.
func QuoteValue(v string) string {
	n := 0
	for i := range v { // i walks characters; an invalid byte counts as one
		if n == MaxQuotedValue {
			return strconv.Quote(v[:i]) + "... (" + strconv.Itoa(len(v)) + " bytes)"
		}
		n++
	}
	return strconv.Quote(v)
}

// Validate checks the key against the API's documented limits. An invalid key
// is never sent.
func (k Key) Validate() error {
	if k.CCID < 1 || k.CCID > MaxCCID {
		return &FieldError{Field: "ccId", Value: strconv.Itoa(k.CCID), Reason: "must be 1..65535"}
	}
	if k.VDN < 1 || k.VDN > MaxVDN {
		return &FieldError{Field: "vdn", Value: strconv.Itoa(k.VDN), Reason: "must be 1..5000"}
	}
	return ValidateCallID(k.CallID)
}

// ValidateCallID checks the "digits-digits" form, 1..20 characters. Both 10-
// and 13-digit prefixes occur in Huawei's own examples, so the prefix length
// is not enforced.
func ValidateCallID(id string) error {
	bad := func(reason string) error { return &FieldError{Field: "callId", Value: id, Reason: reason} }
	if len(id) == 0 {
		return bad("is empty")
	}
	if len(id) > MaxCallIDLen {
		return bad("longer than 20 characters")
	}
	dash := -1
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= '0' && c <= '9':
		case c == '-' && dash < 0:
			dash = i
		default:
			return bad("must be digits-digits")
		}
	}
	if dash <= 0 || dash == len(id)-1 {
		return bad("must be digits-digits")
	}
	return nil
}

// Digest is a fixed-size fingerprint of a key, used for the sets that
// de-duplicate input and remember committed work: 16 bytes per entry keeps a
// million keys well inside the memory budget, and at 128 bits a collision is
// not a practical concern.
type Digest [16]byte

// Digest returns the key's fingerprint.
func (k Key) Digest() Digest {
	var buf [8 + MaxCallIDLen*2]byte
	b := binary.BigEndian.AppendUint32(buf[:0], uint32(k.CCID))
	b = binary.BigEndian.AppendUint32(b, uint32(k.VDN))
	b = append(b, k.CallID...)
	sum := sha256.Sum256(b)
	var d Digest
	copy(d[:], sum[:16])
	return d
}

// CallStartedAt reads a call's start from its callId prefix (the digits
// before the first '-', or the whole id without one): 13 digits are epoch
// milliseconds, 10 digits epoch seconds (both occur in Huawei's examples),
// in UTC. Other lengths, non-digits and a zero prefix give false.
func CallStartedAt(callID string) (time.Time, bool) {
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
