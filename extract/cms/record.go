package cms

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// errNotObject is wrapped by every DecodeRecord error.
var errNotObject = errors.New("result is not a JSON object")

// maxShown bounds how much of a bad value is quoted in a Problem.
const maxShown = 64

// decodeObject decodes one result object leniently into a generated record
// store (records_gen.go): index maps a key to a field, set stores its value.
// Numeric fields take JSON numbers and numeric strings (" 12 ", "275.0",
// "2.75e2": any integral value within int64); text fields take strings
// (trimmed), numbers (kept as their JSON text) and booleans. "", null and
// missing fields are nil. A value that cannot be interpreted leaves its field
// nil and adds an entry to the record's Problems. Keys match the declared
// names exactly; unknown keys are ignored; for a repeated key the last one
// wins.
//
// It returns an error only when raw is not a JSON object (null included; see
// IsEmptyObject).
func decodeObject(raw []byte, index func(key []byte) int, set func(i, kind int, tok []byte, esc bool)) error {
	s := &objectScanner{b: raw, invalid: errNotObject}
	if err := s.object(index, set); err != nil {
		return fmt.Errorf("decode record: %w", err)
	}
	return nil
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

// setText stores a text value in *slot and points *p at it, or leaves *p
// nil for "", null and a refused value; it returns why a value was refused.
func setText(p **string, slot *string, kind int, tok []byte, esc bool) (why string) {
	*p = nil
	switch kind {
	case tokString:
		v := trimmedContent(tok, esc)
		if len(v) == 0 {
			return ""
		}
		*slot = string(v)
	case tokNumber:
		*slot = string(tok)
	case tokTrue:
		*slot = "true"
	case tokFalse:
		*slot = "false"
	case tokNull:
		return ""
	default:
		return "is not text"
	}
	*p = slot
	return ""
}

// setInt is setText for numeric fields.
func setInt(p **int64, slot *int64, kind int, tok []byte, esc bool) (why string) {
	*p = nil
	var digits []byte
	switch kind {
	case tokNumber:
		digits = tok
	case tokString:
		if digits = trimmedContent(tok, esc); len(digits) == 0 {
			return ""
		}
	case tokNull:
		return ""
	default:
		return "is not an integer"
	}
	v, res := parseInteger(digits)
	switch res {
	case intOK:
		*slot = v
		*p = slot
		return ""
	case intOutOfRange:
		return "is out of int64 range"
	}
	return "is not an integer"
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
