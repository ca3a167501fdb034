package cms

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/cmsetl/cms-etl/extract"
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

// ListRequest asks querycalls (v2) for one page of a VDN's calls of one
// direction whose time lies in [Begin, End], both bounds inclusive, in
// milliseconds (cms-discovery.md 1.2).
type ListRequest struct {
	CCID, VDN     int
	Inbound       bool
	Begin, End    time.Time
	Limit, Offset int
}

// ListResult is one page's answer, retries included.
type ListResult struct {
	Class      Class   // ClassOK (Listing set, whatever its rows), or how it failed
	Listing    Listing // the page (ClassOK)
	ResultCode string
	Message    string
	HTTPStatus int
	Attempts   int
	FetchedAt  time.Time
	// Err is as Result.Err: the cause of a transient or fatal failure, a
	// *StatusError for an HTTP-level permanent one.
	Err error
}

// listed stands in for a listing's object when classifying: a success code
// is a page, even an empty one, never "no data".
var listed = json.RawMessage("[]")

// List asks querycalls for one page. The dates go as JSON numbers, as the
// parameter table types them; Huawei's sample and a live tenant's client
// send strings, so on 0100002 the page is asked once with strings, and the
// form that worked is kept for the client's life.
func (c *Client) List(ctx context.Context, req ListRequest) ListResult {
	u := c.urls[ListCallsPath]
	key := extract.Key{CCID: req.CCID, VDN: req.VDN}
	var page Listing
	read := func(ex exchanged, body []byte) verdict {
		page = Listing{}
		err := decodeBody(ex, body, func(b []byte) (derr error) {
			page, derr = DecodeListing(b)
			return derr
		})
		resp := Response{Code: page.Code, Message: page.Message, Object: listed}
		v := verdict{class: Classify(ex.status, resp, err), code: page.Code}
		if v.class == ClassOK {
			return v
		}
		resp.Object = nil
		return failed(v, ex, resp, u, err)
	}
	m := c.sendShaped(shapeListDates, "querycalls", func(asText bool) callMeta {
		return c.roundTrips(ctx, key, u, appendListBody(make([]byte, 0, 160), req, asText), read)
	})
	res := ListResult{Class: m.class, ResultCode: m.code, Message: m.message, HTTPStatus: m.httpStatus,
		Attempts: m.attempts, FetchedAt: m.fetchedAt, Err: m.err}
	if m.class == ClassOK {
		res.Listing = page
	}
	return res
}

// appendListBody writes the querycalls body; datesAsText sends beginDate
// and endDate as strings of digits.
func appendListBody(b []byte, req ListRequest, datesAsText bool) []byte {
	date := func(b []byte, name string, t time.Time) []byte {
		b = append(b, `,"`+name+`":`...)
		if datesAsText {
			b = append(b, '"')
		}
		b = strconv.AppendInt(b, t.UnixMilli(), 10)
		if datesAsText {
			b = append(b, '"')
		}
		return b
	}
	b = append(b, `{"ccId":`...)
	b = strconv.AppendInt(b, int64(req.CCID), 10)
	b = append(b, `,"vdn":`...)
	b = strconv.AppendInt(b, int64(req.VDN), 10)
	b = date(b, "beginDate", req.Begin)
	b = date(b, "endDate", req.End)
	b = append(b, `,"isCallIn":"`...)
	b = strconv.AppendBool(b, req.Inbound)
	b = append(b, `","limit":`...)
	b = strconv.AppendInt(b, int64(req.Limit), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, int64(req.Offset), 10)
	return append(b, '}')
}
