package cms

import (
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cmsetl/cms-etl/extract"
)

// Request is what a per-call endpoint is asked about: a call's key and, for
// the CDR, its direction.
type Request struct {
	Key     extract.Key
	Inbound bool // querycalldetailbyid's isCallin
}

// Endpoint declares one per-call interface of the querybasiccallinfo family:
// its path, its request body and the generated decoder of its result object.
// The transport (signing, limiter, retries, classification, body cap) is
// the Client's, shared by all endpoints.
type Endpoint[Rec any] struct {
	// Name is the interface's name, for messages (querybasiccallinfo).
	Name string
	Path string
	// body appends the request body of req; wrapped selects the
	// {"queryParam":{...}} shape of Huawei's samples (see Wrapped).
	body   func(b []byte, req Request, wrapped bool) []byte
	decode func(obj []byte) (*Rec, error)
	// Wrapped: the interface's documented body is flat but Huawei's sample
	// wraps it. The flat body is sent first; on 0100002 (invalid parameter)
	// the call is tried once wrapped, and the shape that worked is kept for
	// the rest of the client's life.
	Wrapped bool
	// shape is which body shape works: index into Client.shapes.
	shape int
}

// The per-call endpoints.
var (
	// BasicCallInfo asks querybasiccallinfo about a call in progress.
	BasicCallInfo = &Endpoint[Record]{
		Name: "querybasiccallinfo", Path: QueryPath, decode: DecodeRecord,
		body: func(b []byte, req Request, _ bool) []byte { return appendBasicBody(b, req.Key) },
	}
	// CallDetailByID asks querycalldetailbyid for a finished call's CDR.
	CallDetailByID = &Endpoint[CallDetail]{
		Name: "querycalldetailbyid", Path: CallDetailPath, decode: DecodeCallDetail,
		body: appendDetailBody, Wrapped: true, shape: shapeCallDetail,
	}
)

// Body shapes known to work, per endpoint that has two (Endpoint.Wrapped).
const (
	shapeUnknown int32 = iota
	shapeFlat
	shapeWrapped
)

// Indexes of Client.shapes.
const (
	shapeCallDetail = iota
	shapeListDates
	numShapes
)

type shapes [numShapes]atomic.Int32

// Result is the outcome of one call to a per-call endpoint, retries included.
type Result[Rec any] struct {
	Key        extract.Key
	Class      Class
	Record     *Rec            // set for ClassOK
	Raw        json.RawMessage // the result object exactly as received (ClassOK; nil with Config.DiscardRaw)
	ResultCode string          // business code: resultCode, else legacy result
	Message    string          // resultDesc text on failure, or a description of the error
	HTTPStatus int             // status of the last attempt; 0 when no response
	Attempts   int             // attempts made (0 for ClassRejected)
	FetchedAt  time.Time       // when the last response arrived
	Latency    time.Duration   // duration of the last attempt
	// Err is the underlying error of transient and fatal results, and a
	// *StatusError for a permanent HTTP-level failure (a status outside 2xx:
	// the answer says nothing about the call, only about the endpoint).
	Err error
}

// Fetch asks ep about one call. It never panics and always returns exactly
// one class; see Result and Classify. An invalid key is not sent
// (ClassRejected). A cancelled ctx stops waits and the request in flight and
// yields ClassTransient with Err wrapping ctx.Err().
func Fetch[Rec any](ctx context.Context, c *Client, ep *Endpoint[Rec], req Request) Result[Rec] {
	res := Result[Rec]{Key: req.Key}
	if err := req.Key.Validate(); err != nil {
		res.Class, res.Message, res.Err = ClassRejected, err.Error(), err
		return res
	}
	u := c.urls[ep.Path]
	var rec *Rec
	var raw json.RawMessage
	read := func(ex exchanged, body []byte) verdict {
		rec, raw = nil, nil
		v, obj := readEnvelope(ex, body, u, !c.cfg.DiscardRaw, func(obj []byte) error {
			r, err := ep.decode(obj)
			rec = r
			return err
		})
		if v.class == ClassOK && !c.cfg.DiscardRaw {
			raw = obj
		}
		return v
	}
	send := func(wrapped bool) callMeta {
		// Marshalled once: these exact bytes are signed and sent by every attempt.
		body := ep.body(make([]byte, 0, 64+len(req.Key.CallID)), req, wrapped)
		return c.roundTrips(ctx, req.Key, u, body, read)
	}
	var m callMeta
	if !ep.Wrapped {
		m = send(false)
	} else {
		m = c.sendShaped(ep.shape, ep.Name, send)
	}
	res.Class, res.ResultCode, res.Message, res.Err = m.class, m.code, m.message, m.err
	res.HTTPStatus, res.Attempts, res.FetchedAt, res.Latency = m.httpStatus, m.attempts, m.fetchedAt, m.latency
	if m.class == ClassOK {
		res.Record, res.Raw = rec, raw
	}
	return res
}

// sendShaped sends with the body shape known to work, or flat first and,
// on 0100002, once in the other shape. A shape is kept only on an answer
// about the request (ok, no data, or a business code other than "invalid
// parameter"): an HTTP error or a transport failure says nothing about it.
func (c *Client) sendShaped(i int, name string, send func(alt bool) callMeta) callMeta {
	known := c.shapes[i].Load()
	m := send(known == shapeWrapped)
	if known != shapeUnknown {
		return m
	}
	if !invalidParam(m) {
		if understood(m) {
			c.shapes[i].CompareAndSwap(shapeUnknown, shapeFlat)
		}
		return m
	}
	alt := send(true)
	alt.attempts += m.attempts
	if invalidParam(alt) {
		// Neither shape is accepted: the request itself is invalid.
		m.attempts = alt.attempts
		return m
	}
	if understood(alt) && c.shapes[i].CompareAndSwap(shapeUnknown, shapeWrapped) {
		c.log.Info().Str("interface", name).Msg("the server wants the other request body shape (wrapped, or dates as text); keeping it for this run")
	}
	return alt
}

// invalidParam: the server understood the envelope and refused the body.
func invalidParam(m callMeta) bool {
	return m.class == ClassPermanent && m.code == CodeInvalidParam && m.httpStatus >= 200 && m.httpStatus <= 299
}

// understood: the server answered about the request, so its body shape
// works.
func understood(m callMeta) bool {
	switch m.class {
	case ClassOK, ClassNoData:
		return true
	case ClassPermanent:
		return m.httpStatus >= 200 && m.httpStatus <= 299
	}
	return false
}

// Query fetches the basic information of one call in progress: Fetch of
// BasicCallInfo.
func (c *Client) Query(ctx context.Context, key extract.Key) Result[Record] {
	return Fetch(ctx, c, BasicCallInfo, Request{Key: key})
}

// appendBasicBody writes {"ccId":N,"vdn":N,"callId":"..."}. The key is
// validated first, so callId holds only digits and '-' and needs no escaping.
func appendBasicBody(b []byte, k extract.Key) []byte {
	b = append(b, `{"ccId":`...)
	b = strconv.AppendInt(b, int64(k.CCID), 10)
	b = append(b, `,"vdn":`...)
	b = strconv.AppendInt(b, int64(k.VDN), 10)
	b = append(b, `,"callId":"`...)
	b = append(b, k.CallID...)
	return append(b, `"}`...)
}

// appendDetailBody writes {"ccId":N,"isCallin":"true|false","callId":"..."}
// (no vdn: the CDR interface has none), or the same inside
// {"queryParam":...} as Huawei's sample request shows.
func appendDetailBody(b []byte, req Request, wrapped bool) []byte {
	if wrapped {
		b = append(b, `{"queryParam":`...)
	}
	b = append(b, `{"ccId":`...)
	b = strconv.AppendInt(b, int64(req.Key.CCID), 10)
	b = append(b, `,"isCallin":"`...)
	b = strconv.AppendBool(b, req.Inbound)
	b = append(b, `","callId":"`...)
	b = append(b, req.Key.CallID...)
	b = append(b, `"}`...)
	if wrapped {
		b = append(b, '}')
	}
	return b
}
