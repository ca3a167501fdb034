package cms

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Listing is a decoded querycalls (v2) answer: the envelope and one page of
// listed calls (cms-discovery.md 1.5). On success resultDesc is an object
// {"data":[...],"count":N}; on failure it is a text message.
type Listing struct {
	Code    string // resultCode (or the legacy result)
	Message string // resultDesc text on failure
	// Count is resultDesc.count, the number of calls the window holds over
	// all pages; HasCount is false when the answer did not carry one.
	Count    int64
	HasCount bool
	// Items are the data array's objects, copied out of the body, for
	// DecodeListedCall (and to be stored raw).
	Items []json.RawMessage
}

// Listing members, as slots of listingIndex.
const (
	listData = iota
	listCount
)

func listingIndex(key []byte) int {
	switch k := string(key); {
	case strings.EqualFold(k, "data"):
		return listData
	case strings.EqualFold(k, "count"):
		return listCount
	}
	return -1
}

// DecodeListing decodes a querycalls answer. A body that is not an envelope,
// a data member that is not an array of objects, or a count that is not a
// non-negative integer is an error wrapping ErrMalformed. A success code with
// no resultDesc object is an empty page without a count.
func DecodeListing(body []byte) (Listing, error) {
	resp, err := decodeResponse(body, false)
	if err != nil {
		return Listing{}, err
	}
	l := Listing{Code: resp.Code, Message: resp.Message}
	if resp.Object == nil {
		return l, nil
	}
	var members [2]envValue
	s := objectScanner{b: resp.Object, invalid: errInvalidJSON}
	if err := s.object(listingIndex, func(i, kind int, tok []byte, esc bool) {
		members[i] = envValue{kind: kind, tok: tok, esc: esc}
	}); err != nil {
		return Listing{}, malformed("resultDesc: " + err.Error())
	}
	if c := members[listCount]; len(c.tok) > 0 && c.kind != tokNull {
		digits, ok := scalarText(c)
		n, res := parseInteger([]byte(strings.TrimSpace(digits)))
		if !ok || res != intOK || n < 0 {
			return Listing{}, malformed("resultDesc.count " + describe(c.kind, c.tok) + " is not a count")
		}
		l.Count, l.HasCount = n, true
	}
	switch d := members[listData]; {
	case len(d.tok) == 0 || d.kind == tokNull:
	case d.kind != tokArray:
		return Listing{}, malformed("resultDesc.data is " + describe(d.kind, d.tok) + ", not an array")
	default:
		items, err := arrayObjects(d.tok)
		if err != nil {
			return Listing{}, malformed("resultDesc.data: " + err.Error())
		}
		l.Items = items
	}
	return l, nil
}

// arrayObjects returns copies of the elements of a JSON array (validated by
// the scanner already), each of which must be an object.
func arrayObjects(arr []byte) ([]json.RawMessage, error) {
	s := &objectScanner{b: arr, invalid: errInvalidJSON}
	s.i++ // '['
	var out []json.RawMessage
	for {
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ']' && len(out) == 0 {
			return out, nil
		}
		start := s.i
		kind, _, err := s.value(1)
		if err != nil {
			return nil, err
		}
		if kind != tokObject {
			return nil, s.errorf("element %d is %s, not an object", len(out), describe(kind, s.b[start:s.i]))
		}
		out = append(out, bytes.Clone(s.b[start:s.i]))
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ',' {
			s.i++
			continue
		}
		return out, nil
	}
}
