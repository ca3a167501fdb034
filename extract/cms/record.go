package cms

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Field indexes of the result object, in the documented order.
const (
	fTime = iota
	fDSN
	fHandle
	fServer
	fKeyID
	fCallingNum
	fCalledNum
	fMID
	fTrunkNo
	fPriority
	fDeviceType
	fDeviceNo
	fCallSkill
	fPartyNum
	fCallFeature
	fOrgiCalledNum
	fMediaType
	fPlace
	fWaitTime
	fTotalTalkingTimes
	fLogonTimes
	fServiceType
	fCallInCause
	fEnterReason
	fMediaBillType
	numFields
)

// fieldNames holds the exact API spelling of every field (for Problems).
var fieldNames = [numFields]string{
	"time", "dsn", "handle", "server", "keyId", "callingNum", "calledNum", "mid", "trunkNo",
	"priority", "deviceType", "deviceNo", "callSkill", "partyNum", "callFeature", "orgiCalledNum",
	"mediaType", "place", "waitTime", "totalTalkingTimes", "logonTimes", "serviceType",
	"callInCause", "enterReason", "mediaBillType",
}

// fieldIndex matches a key exactly (case-sensitive, unlike encoding/json);
// -1 for fields we do not know. The switch on string(b) does not allocate.
func fieldIndex(b []byte) int {
	switch string(b) {
	case "time":
		return fTime
	case "dsn":
		return fDSN
	case "handle":
		return fHandle
	case "server":
		return fServer
	case "keyId":
		return fKeyID
	case "callingNum":
		return fCallingNum
	case "calledNum":
		return fCalledNum
	case "mid":
		return fMID
	case "trunkNo":
		return fTrunkNo
	case "priority":
		return fPriority
	case "deviceType":
		return fDeviceType
	case "deviceNo":
		return fDeviceNo
	case "callSkill":
		return fCallSkill
	case "partyNum":
		return fPartyNum
	case "callFeature":
		return fCallFeature
	case "orgiCalledNum":
		return fOrgiCalledNum
	case "mediaType":
		return fMediaType
	case "place":
		return fPlace
	case "waitTime":
		return fWaitTime
	case "totalTalkingTimes":
		return fTotalTalkingTimes
	case "logonTimes":
		return fLogonTimes
	case "serviceType":
		return fServiceType
	case "callInCause":
		return fCallInCause
	case "enterReason":
		return fEnterReason
	case "mediaBillType":
		return fMediaBillType
	}
	return -1
}

// numTextFields and numIntFields count the fields of each kind; slotOf maps
// a field to its place among the fields of its kind, so a record's storage
// holds one value per field rather than both kinds for every field.
const (
	numTextFields = 6
	numIntFields  = numFields - numTextFields
)

var slotOf = func() (slot [numFields]int) {
	var text, ints int
	for i := range numFields {
		if textField(i) {
			slot[i], text = text, text+1
		} else {
			slot[i], ints = ints, ints+1
		}
	}
	if text != numTextFields {
		panic("cms: numTextFields does not match textField")
	}
	return slot
}()

// textField reports whether field i is kept as text.
func textField(i int) bool {
	switch i {
	case fKeyID, fCallingNum, fCalledNum, fCallSkill, fOrgiCalledNum, fMediaBillType:
		return true
	}
	return false
}

func (r *Record) intPtr(i int) **int64 {
	switch i {
	case fTime:
		return &r.Time
	case fDSN:
		return &r.DSN
	case fHandle:
		return &r.Handle
	case fServer:
		return &r.Server
	case fMID:
		return &r.MID
	case fTrunkNo:
		return &r.TrunkNo
	case fPriority:
		return &r.Priority
	case fDeviceType:
		return &r.DeviceType
	case fDeviceNo:
		return &r.DeviceNo
	case fPartyNum:
		return &r.PartyNum
	case fCallFeature:
		return &r.CallFeature
	case fMediaType:
		return &r.MediaType
	case fPlace:
		return &r.Place
	case fWaitTime:
		return &r.WaitTime
	case fTotalTalkingTimes:
		return &r.TotalTalkingTimes
	case fLogonTimes:
		return &r.LogonTimes
	case fServiceType:
		return &r.ServiceType
	case fCallInCause:
		return &r.CallInCause
	case fEnterReason:
		return &r.EnterReason
	}
	panic("cms: not a numeric field index: " + strconv.Itoa(i))
}

func (r *Record) textPtr(i int) **string {
	switch i {
	case fKeyID:
		return &r.KeyID
	case fCallingNum:
		return &r.CallingNum
	case fCalledNum:
		return &r.CalledNum
	case fCallSkill:
		return &r.CallSkill
	case fOrgiCalledNum:
		return &r.OrgiCalledNum
	case fMediaBillType:
		return &r.MediaBillType
	}
	panic("cms: not a text field index: " + strconv.Itoa(i))
}

// recordStore puts the Record and the storage of its values in one
// allocation: a decoded record costs one allocation plus one per text value.
type recordStore struct {
	rec  Record
	ints [numIntFields]int64
	strs [numTextFields]string
}

// errNotObject is wrapped by every DecodeRecord error.
var errNotObject = errors.New("result is not a JSON object")

// maxShown bounds how much of a bad value is quoted in a Problem.
const maxShown = 64

// DecodeRecord decodes the result object of querybasiccallinfo leniently.
// Numeric fields take JSON numbers and numeric strings (" 12 ", "275.0",
// "2.75e2": any integral value within int64); text fields take strings
// (trimmed), numbers (kept as their JSON text) and booleans. "", null and
// missing fields are nil. A value that cannot be interpreted leaves its field
// nil and adds an entry to Record.Problems. Keys match the documented names
// exactly; unknown keys are ignored; for a repeated key the last one wins.
//
// It returns an error only when raw is not a JSON object (null included; see
// IsEmptyObject).
func DecodeRecord(raw []byte) (*Record, error) {
	s := &objectScanner{b: raw, invalid: errNotObject}
	st := &recordStore{}
	if err := s.object(fieldIndex, st.set); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return &st.rec, nil
}

// IsEmptyObject reports whether raw is absent, null or {} (whitespace
// allowed): the API's ways of saying "no data".
func IsEmptyObject(raw []byte) bool {
	b := bytes.TrimLeft(raw, " \t\r\n")
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) == 0 || string(b) == "null" {
		return true
	}
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return false
	}
	return len(bytes.TrimLeft(b[1:len(b)-1], " \t\r\n")) == 0
}

// set stores one field's value; tok is the value's JSON text.
func (st *recordStore) set(i, kind int, tok []byte, esc bool) {
	if textField(i) {
		p := st.rec.textPtr(i)
		*p = nil
		switch kind {
		case tokString:
			v := trimmedContent(tok, esc)
			if len(v) == 0 {
				return
			}
			st.strs[slotOf[i]] = string(v)
		case tokNumber:
			st.strs[slotOf[i]] = string(tok)
		case tokTrue:
			st.strs[slotOf[i]] = "true"
		case tokFalse:
			st.strs[slotOf[i]] = "false"
		case tokNull:
			return
		default:
			st.problem(i, describe(kind, tok), "is not text")
			return
		}
		*p = &st.strs[slotOf[i]]
		return
	}

	p := st.rec.intPtr(i)
	*p = nil
	var digits []byte
	switch kind {
	case tokNumber:
		digits = tok
	case tokString:
		if digits = trimmedContent(tok, esc); len(digits) == 0 {
			return
		}
	case tokNull:
		return
	default:
		st.problem(i, describe(kind, tok), "is not an integer")
		return
	}
	v, res := parseInteger(digits)
	switch res {
	case intOK:
		st.ints[slotOf[i]] = v
		*p = &st.ints[slotOf[i]]
	case intOutOfRange:
		st.problem(i, describe(kind, tok), "is out of int64 range")
	default:
		st.problem(i, describe(kind, tok), "is not an integer")
	}
}

// unquote decodes a JSON string the scanner flagged as needing it (escapes
// or invalid UTF-8, which becomes U+FFFD as in encoding/json). Kept out of
// set so that the common path does not heap-allocate a target string.
func unquote(tok []byte) string {
	var v string
	_ = json.Unmarshal(tok, &v) // tok was validated by the scanner
	return v
}

// trimmedContent is a string token's content without surrounding blanks;
// it aliases tok unless the string has escapes.
func trimmedContent(tok []byte, esc bool) []byte {
	if esc {
		return []byte(strings.TrimSpace(unquote(tok)))
	}
	return bytes.TrimSpace(tok[1 : len(tok)-1])
}

func (st *recordStore) problem(i int, shown, why string) {
	st.rec.Problems = append(st.rec.Problems, fieldNames[i]+": "+shown+" "+why)
}

// describe renders a bad value for a Problem, bounded in length.
func describe(kind int, tok []byte) string {
	switch kind {
	case tokObject:
		return "an object"
	case tokArray:
		return "an array"
	}
	shown := string(tok)
	if len(tok) > maxShown {
		shown = string(tok[:maxShown]) + "..."
	}
	// Problems end up in logs: keep them valid UTF-8.
	return strings.ToValidUTF8(shown, "\uFFFD")
}

const (
	intOK = iota
	intNotInteger
	intOutOfRange
)

// parseInteger reads a decimal number (sign, digits, optional fraction and
// exponent) exactly, without floating point, and returns it when it is an
// integer within int64. "275.0", "2.75e2" and "-0" are integers; "2.5" is not.
func parseInteger(b []byte) (int64, int) {
	i := 0
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	intStart := i
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	intDigits := b[intStart:i]
	var fracDigits []byte
	if i < len(b) && b[i] == '.' {
		i++
		fs := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		fracDigits = b[fs:i]
	}
	if len(intDigits)+len(fracDigits) == 0 {
		return 0, intNotInteger
	}
	// Fast path: plain integer digits.
	if i == len(b) && len(fracDigits) == 0 {
		return accumulate(intDigits, nil, 0, len(intDigits), neg)
	}
	var exp int64
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		es := i
		for i < len(b) && isDigit(b[i]) {
			if exp < 1<<40 { // saturate: larger exponents behave alike
				exp = exp*10 + int64(b[i]-'0')
			}
			i++
		}
		if i == es {
			return 0, intNotInteger
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(b) {
		return 0, intNotInteger
	}
	// The digits d = intDigits+fracDigits with the decimal point after
	// position point. Find the first non-zero digit.
	n := int64(len(intDigits) + len(fracDigits))
	digit := func(k int64) byte {
		if k < int64(len(intDigits)) {
			return intDigits[k]
		}
		return fracDigits[k-int64(len(intDigits))]
	}
	point := int64(len(intDigits)) + exp
	first := int64(0)
	for first < n && digit(first) == '0' {
		first++
	}
	if first == n {
		return 0, intOK // all zeros
	}
	if first >= point {
		return 0, intNotInteger // a non-zero digit after the point
	}
	for k := max(point, first); k < n; k++ {
		if digit(k) != '0' {
			return 0, intNotInteger
		}
	}
	if point-first > 19 {
		return 0, intOutOfRange
	}
	return accumulate(intDigits, fracDigits, int(first), int(point), neg)
}

// accumulate converts digits [from, to) of intDigits+fracDigits, with zeros
// past the end, into an int64.
func accumulate(intDigits, fracDigits []byte, from, to int, neg bool) (int64, int) {
	const limit = uint64(1) << 63 // |math.MinInt64|
	var u uint64
	for k := from; k < to; k++ {
		var d byte = '0'
		switch {
		case k < len(intDigits):
			d = intDigits[k]
		case k-len(intDigits) < len(fracDigits):
			d = fracDigits[k-len(intDigits)]
		}
		if u > (limit-uint64(d-'0'))/10 {
			return 0, intOutOfRange
		}
		u = u*10 + uint64(d-'0')
	}
	if neg {
		return -int64(u), intOK // -(1<<63) wraps to MinInt64 as intended
	}
	if u > limit-1 {
		return 0, intOutOfRange
	}
	return int64(u), intOK
}
