package cmssim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cmsetl/cms-etl/extract"
)

// querycalls (cms-discovery.md section 1) as the simulator serves it:
//
//   - Body: ccId and vdn (JSON integers), beginDate and endDate (epoch ms,
//     JSON numbers or numeric strings), isCallIn ("true"/"false", required:
//     without it 0100002 "Invalid param, must have parameter: 'isCallIn'"),
//     limit (1..100, default 100) and offset (>= 0, default 0), both numbers
//     or numeric strings, and the optional exact-match filters callerNo and
//     calleeNo (digits; "" = all).
//   - Window rule, by the simulator's clock in UTC: beginDate no earlier
//     than yesterday 00:00:00.000, endDate no later than today
//     23:59:59.999, beginDate <= endDate; otherwise 0100002.
//   - Filter: waitBegin (the call's start, the callId prefix) in
//     [beginDate, endDate], both bounds inclusive; only calls already stored
//     (logDate <= now) and retained; the direction of isCallIn.
//   - Order: waitBegin ascending, then callId ascending (as strings).
//   - Answer: {"resultCode":"0100000","resultDesc":{"data":[...],"count":N}}
//     with count the number of all matches; rows with logDate, callType,
//     waitBegin, ackBegin, callBegin, callEnd and leaveReason as strings, vdn,
//     mediaType and subMediaType as numbers, as in Huawei's sample; ackBegin
//     and callBegin null for calls never answered, subMediaType null for
//     calls that are not social chat.

// Defaults and limits of querycalls paging.
const (
	maxQueryLimit     = 100
	defaultQueryLimit = maxQueryLimit
)

type queryCallsRequest struct {
	ccID, vdn          int
	begin, end         int64 // epoch ms, inclusive
	inbound            bool
	limit, offset      int
	callerNo, calleeNo string
}

// invalidParam is a 0100002 answer's text.
type invalidParam string

func (e invalidParam) Error() string { return string(e) }

func missingParam(name string) error {
	return invalidParam("Invalid param, must have parameter: '" + name + "'")
}

func badParam(name, format string, args ...any) error {
	return invalidParam("Invalid param, " + name + ": " + fmt.Sprintf(format, args...))
}

// parseObject decodes a JSON object body into its members.
func parseObject(body []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, invalidParam("Invalid param, the body must be a JSON object")
	}
	return m, nil
}

// present reports whether member name is there and not null.
func present(m map[string]json.RawMessage, name string) bool {
	v, ok := m[name]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// intParam reads an integer member; withStrings also accepts a numeric
// string ("1700000000000"), as the documented samples send dates.
func intParam(m map[string]json.RawMessage, name string, withStrings bool, lo, hi int64) (int64, error) {
	raw := bytes.TrimSpace(m[name])
	text := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if !withStrings {
			return 0, badParam(name, "must be a number")
		}
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, badParam(name, "is not a valid string")
		}
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, badParam(name, "%s is not an integer", raw)
	}
	if v < lo || v > hi {
		return 0, badParam(name, "%d outside %d..%d", v, lo, hi)
	}
	return v, nil
}

// boolStringParam reads a required "true"/"false" string member.
func boolStringParam(m map[string]json.RawMessage, name string) (bool, error) {
	if !present(m, name) {
		return false, missingParam(name)
	}
	var s string
	if err := json.Unmarshal(m[name], &s); err != nil || (s != "true" && s != "false") {
		return false, badParam(name, `must be the string "true" or "false"`)
	}
	return s == "true", nil
}

func digitsParam(m map[string]json.RawMessage, name string) (string, error) {
	if !present(m, name) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(m[name], &s); err != nil {
		return "", badParam(name, "must be a string")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", badParam(name, "must be digits")
		}
	}
	return s, nil
}

func parseQueryCalls(body []byte) (queryCallsRequest, error) {
	m, err := parseObject(body)
	if err != nil {
		return queryCallsRequest{}, err
	}
	var q queryCallsRequest
	for _, name := range []string{"ccId", "vdn", "beginDate", "endDate"} {
		if !present(m, name) {
			return q, missingParam(name)
		}
	}
	cc, err := intParam(m, "ccId", false, 1, extract.MaxCCID)
	if err != nil {
		return q, err
	}
	vdn, err := intParam(m, "vdn", false, 1, extract.MaxVDN)
	if err != nil {
		return q, err
	}
	q.ccID, q.vdn = int(cc), int(vdn)
	if q.begin, err = intParam(m, "beginDate", true, 0, 1<<53); err != nil {
		return q, err
	}
	if q.end, err = intParam(m, "endDate", true, 0, 1<<53); err != nil {
		return q, err
	}
	if q.inbound, err = boolStringParam(m, "isCallIn"); err != nil {
		return q, err
	}
	q.limit = defaultQueryLimit
	if present(m, "limit") {
		v, err := intParam(m, "limit", true, 1, maxQueryLimit)
		if err != nil {
			return q, err
		}
		q.limit = int(v)
	}
	if present(m, "offset") {
		v, err := intParam(m, "offset", true, 0, 1<<31-1)
		if err != nil {
			return q, err
		}
		q.offset = int(v)
	}
	if q.callerNo, err = digitsParam(m, "callerNo"); err != nil {
		return q, err
	}
	if q.calleeNo, err = digitsParam(m, "calleeNo"); err != nil {
		return q, err
	}
	return q, nil
}

// QueryWindow returns the window querycalls accepts at now: from yesterday
// 00:00:00.000 UTC to today 23:59:59.999 UTC, both inclusive.
func QueryWindow(now time.Time) (from, to time.Time) {
	from = yesterdayUTC(now)
	return from, from.Add(48*time.Hour - time.Millisecond)
}

func checkWindow(q queryCallsRequest, now time.Time) error {
	from, to := QueryWindow(now)
	switch {
	case q.begin < from.UnixMilli():
		return badParam("beginDate", "%d is earlier than 00:00:00 of the previous day (%d, UTC); the data is kept for one day",
			q.begin, from.UnixMilli())
	case q.end > to.UnixMilli():
		return badParam("endDate", "%d is later than 23:59:59 of the current day (%d, UTC)", q.end, to.UnixMilli())
	case q.begin > q.end:
		return badParam("beginDate", "%d is later than endDate %d", q.begin, q.end)
	}
	return nil
}

// Salts of the querycalls faults.
const (
	saltShortPage  = 0x6a09e667f3bcc909
	saltShortWhere = 0xbb67ae8584caa73b
	saltDrift      = 0x3c6ef372fe94f82c
	saltDriftBy    = 0xa54ff53a5f1d36f2
	saltShortBy    = 0x510e527fade682d1
)

// requestHash identifies a querycalls request for its faults, so a repeated
// request gets the same answer.
func requestHash(seed int64, q queryCallsRequest) uint64 {
	h := uint64(14695981039346656037)
	in := uint64(0)
	if q.inbound {
		in = 1
	}
	for _, v := range [8]uint64{uint64(seed), uint64(q.ccID), uint64(q.vdn), in, uint64(q.begin), uint64(q.end),
		uint64(q.limit), uint64(q.offset)} {
		for i := 0; i < 8; i++ {
			h ^= v & 0xff
			h *= 1099511628211
			v >>= 8
		}
	}
	return mix(h)
}

// QueryCallsRow returns the call's querycalls data row as served.
func (c Call) QueryCallsRow() []byte { return c.appendRow(nil) }

func (c Call) appendRow(b []byte) []byte {
	msString := func(name string, t time.Time) {
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, `":`...)
		if t.IsZero() {
			b = append(b, "null"...)
			return
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, t.UnixMilli(), 10)
		b = append(b, '"')
	}
	b = append(b, `{"logDate":"`...)
	b = strconv.AppendInt(b, c.LogDate.UnixMilli(), 10)
	b = append(b, `","callerNo":"`...)
	b = append(b, c.CallerNo...)
	b = append(b, `","calleeNo":"`...)
	b = append(b, c.CalleeNo...)
	switch {
	case !c.Unkeyed:
		b = append(b, `","callId":"`...)
		b = append(b, c.CallID...)
	case c.WaitBegin.UnixMilli()%2 == 0:
		b = append(b, `","callId":"`...)
	}
	b = append(b, `","callType":"`...)
	b = strconv.AppendInt(b, int64(c.CallType), 10)
	b = append(b, '"')
	msString("waitBegin", c.ListedWaitBegin())
	msString("ackBegin", c.AckBegin)
	msString("callBegin", c.CallBegin)
	msString("callEnd", c.CallEnd)
	b = append(b, `,"vdn":`...)
	b = strconv.AppendInt(b, int64(c.VDN), 10)
	b = append(b, `,"leaveReason":"`...)
	b = strconv.AppendInt(b, int64(c.LeaveReason), 10)
	b = append(b, `","mediaType":`...)
	b = strconv.AppendInt(b, int64(c.MediaType), 10)
	b = append(b, `,"subMediaType":`...)
	if c.SubMediaType == 0 {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(c.SubMediaType), 10)
	}
	return append(b, '}')
}

// listPage returns the page q asks for at now and the number of all
// matches.
func (s *Schedule) listPage(q queryCallsRequest, now time.Time) (page []Call, count int) {
	dir := DirectionOut
	if q.inbound {
		dir = DirectionIn
	}
	vis := s.visibleAt(now)
	filtered := q.callerNo != "" || q.calleeNo != ""
	s.eachHead(q.ccID, q.vdn, time.UnixMilli(q.begin), time.UnixMilli(q.end), func(hd *head) bool {
		if !hd.listedIn(dir) || !vis.stored(hd.start, hd.logDate) {
			return true
		}
		inPage := count >= q.offset && count < q.offset+q.limit
		if filtered || inPage { // the rest of a call is drawn only when needed
			c := s.call(hd)
			if q.callerNo != "" && c.CallerNo != q.callerNo || q.calleeNo != "" && c.CalleeNo != q.calleeNo {
				return true
			}
			if inPage {
				page = append(page, c)
			}
		}
		count++
		return true
	})
	return page, count
}

// queryCalls answers POST querycalls. Config.TransientShare applies to its
// requests (chosen by a hash of the request, failing TransientAttempts
// times), the other shares do not: they are shares of call keys.
func (s *Server) queryCalls(w http.ResponseWriter, r *http.Request, body []byte) {
	cs := s.calls
	now := cs.now()
	q, err := parseQueryCalls(body)
	if err == nil {
		err = checkWindow(q, now)
	}
	var ip invalidParam
	if errors.As(err, &ip) {
		cs.qcRejected.Add(1)
		s.counts[outBadRequest].Add(1)
		s.writeJSON(w, http.StatusOK, appendFailure(nil, EnvelopeNew, codeText{"0100002", string(ip)}))
		return
	}

	h := requestHash(s.cfg.Seed, q)
	if plan := planFor(s.cfg, h); plan.Fault != "" &&
		cs.faultAttempt(fmt.Sprintf("querycalls/%d/%d/%t/%d/%d/%d/%d", q.ccID, q.vdn, q.inbound, q.begin, q.end, q.limit, q.offset),
			s.cfg.TransientAttempts) {
		s.fault(w, r, plan.Fault, h, EnvelopeNew, extract.Key{CCID: q.ccID, VDN: q.vdn, CallID: "1-1"})
		return
	}

	var page []Call
	count := 0
	if cs.sched != nil {
		page, count = cs.sched.listPage(q, now)
	}
	reported := count
	if count > q.limit && cs.sched != nil { // paging faults hit multi-page windows only
		cfg := &cs.sched.cfg
		if len(page) > 0 && unit(mix(h^saltShortPage)) < cfg.ShortPageShare {
			drop := 1 + int(mix(h^saltShortBy)%uint64(min(3, len(page))))
			at := int(mix(h^saltShortWhere) % uint64(len(page)-drop+1))
			page = append(page[:at], page[at+drop:]...)
			cs.shortPages.Add(1)
		}
		if unit(mix(h^saltDrift)) < cfg.CountDriftShare {
			reported += 1 + int(mix(h^saltDriftBy)%3)
			cs.countDrifts.Add(1)
		}
	}
	out := make([]byte, 0, 64+len(page)*330)
	out = append(out, `{"resultCode":"0100000","resultDesc":{"data":[`...)
	for i := range page {
		if i > 0 {
			out = append(out, ',')
		}
		out = page[i].appendRow(out)
	}
	out = append(out, `],"count":`...)
	out = strconv.AppendInt(out, int64(reported), 10)
	out = append(out, "}}"...)
	cs.pages.Add(1)
	cs.rows.Add(int64(len(page)))
	s.counts[outOK].Add(1)
	s.writeJSON(w, http.StatusOK, out)
}
